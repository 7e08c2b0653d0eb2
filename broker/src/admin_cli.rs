//! `attest-broker admin …`: the admin API from the command line. Prints the broker's JSON
//! answer on stdout; exit 0 on success, 1 when the broker refuses, 2 when it cannot be
//! reached or the invocation is unusable.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::audit::{self, AuditEntry};
use crate::client::{Body, Client};

/// `admin` arguments.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The broker's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    pub broker: String,
    /// File holding the admin credential (the broker writes the first one to
    /// `<data_dir>/admin-credential`). Never pass credentials on the command line.
    #[arg(long, value_name = "FILE", global = true)]
    pub credential_file: Option<PathBuf>,
    /// PEM CA certificates trusted for an `https://` broker (nothing else is trusted).
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin operations.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Create an admin credential scoped to one tenant (shown once).
    Credential {
        /// Tenant id.
        tenant: String,
    },
    /// Policies per agent class.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Bootstrap credentials.
    #[command(subcommand)]
    Bootstrap(BootstrapCmd),
    /// Revocations.
    #[command(subcommand)]
    Revoke(RevokeCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Token-signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
}

/// `admin tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        /// Tenant id.
        id: String,
    },
    /// List tenants visible to this credential.
    List,
}

/// `admin policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Store a new version of a class's policy from a JSON file.
    Put {
        /// Tenant id.
        tenant: String,
        /// Agent class.
        class: String,
        /// Policy JSON file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Show a policy (latest version unless given).
    Get {
        /// Tenant id.
        tenant: String,
        /// Agent class.
        class: String,
        /// Version.
        #[arg(long)]
        version: Option<i64>,
    },
}

/// `admin agent …`
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Register an agent.
    Create {
        /// Tenant id.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Agent class (selects the policy).
        #[arg(long)]
        class: String,
    },
    /// List a tenant's agents.
    List {
        /// Tenant id.
        tenant: String,
    },
}

/// `admin bootstrap …`
#[derive(Debug, Subcommand)]
pub enum BootstrapCmd {
    /// Issue a bootstrap secret (shown once). With `--out`, the secret goes to a new file with
    /// mode 0600 instead of stdout.
    Issue {
        /// Tenant id.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Lifetime in seconds (default: until revoked).
        #[arg(long)]
        ttl: Option<i64>,
        /// Revoke the agent's other bootstrap secrets.
        #[arg(long)]
        rotate: bool,
        /// Write the secret to this new file (mode 0600).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke a bootstrap secret by id.
    Revoke {
        /// Tenant id.
        tenant: String,
        /// Credential id.
        id: String,
    },
}

/// `admin revoke …`
#[derive(Debug, Subcommand)]
pub enum RevokeCmd {
    /// One token by jti.
    Token {
        /// Tenant id.
        tenant: String,
        /// Token id.
        jti: String,
    },
    /// Every token of an agent issued before now, and its bootstrap secrets.
    Agent {
        /// Tenant id.
        tenant: String,
        /// Agent id.
        agent: String,
    },
    /// Every token of a tenant issued before now (emergency).
    Tenant {
        /// Tenant id.
        tenant: String,
    },
}

/// `admin audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List entries (one tenant's, or all with a global credential).
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Export the whole chain as JSON lines (global credential).
    Export {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify the chain: fetched from the broker, or from an export file.
    Verify {
        /// An export file (JSON lines) to verify instead of asking the broker.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// `admin keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Start signing with a new key; the old one stays in the JWKS until its tokens expire.
    Rotate,
    /// Revoke a retired key: tokens it signed become inactive.
    Revoke {
        /// Key id.
        kid: String,
    },
}

/// Runs an admin command.
pub fn run(args: &AdminArgs) -> ExitCode {
    match execute(args) {
        Ok(Outcome::Printed) => ExitCode::SUCCESS,
        Ok(Outcome::Refused(body)) => {
            println!("{body}");
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("attest-broker admin: {message}");
            ExitCode::from(2)
        }
    }
}

enum Outcome {
    Printed,
    Refused(Value),
}

struct Api {
    client: Client,
    auth: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Body) -> Result<Result<Value, Value>, String> {
        let reply = self
            .client
            .send(method, path, &[("authorization", &self.auth)], body)
            .map_err(|e| e.0)?;
        Ok(if reply.ok() {
            Ok(reply.body)
        } else {
            Err(reply.body)
        })
    }
}

fn execute(args: &AdminArgs) -> Result<Outcome, String> {
    if let AdminCommand::Audit(AuditCmd::Verify { file: Some(file) }) = &args.command {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        return verify_entries(parse_lines(&text)?);
    }
    let path = args
        .credential_file
        .clone()
        .ok_or("--credential-file is required (the broker wrote the first one to <data_dir>/admin-credential)")?;
    let secret = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let client = match &args.ca_file {
        Some(ca) => {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            Client::with_ca_pem(&args.broker, &pem, std::time::Duration::from_secs(30))
                .map_err(|e| format!("{}: {e}", ca.display()))?
        }
        None => Client::new(&args.broker),
    };
    let api = Api {
        client,
        auth: format!("Bearer {}", secret.trim()),
    };
    let result = match &args.command {
        AdminCommand::Tenant(TenantCmd::Create { id }) => {
            api.call("POST", "/v1/admin/tenants", Body::Json(json!({"id": id})))?
        }
        AdminCommand::Tenant(TenantCmd::List) => {
            api.call("GET", "/v1/admin/tenants", Body::Empty)?
        }
        AdminCommand::Credential { tenant } => api.call(
            "POST",
            &format!("/v1/admin/tenants/{tenant}/admin-credentials"),
            Body::Empty,
        )?,
        AdminCommand::Policy(PolicyCmd::Put {
            tenant,
            class,
            file,
        }) => {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let body: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            api.call(
                "PUT",
                &format!("/v1/admin/tenants/{tenant}/policies/{class}"),
                Body::Json(body),
            )?
        }
        AdminCommand::Policy(PolicyCmd::Get {
            tenant,
            class,
            version,
        }) => {
            let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
            api.call(
                "GET",
                &format!("/v1/admin/tenants/{tenant}/policies/{class}{query}"),
                Body::Empty,
            )?
        }
        AdminCommand::Agent(AgentCmd::Create {
            tenant,
            agent,
            class,
        }) => api.call(
            "POST",
            &format!("/v1/admin/tenants/{tenant}/agents"),
            Body::Json(json!({"agent_id": agent, "class": class})),
        )?,
        AdminCommand::Agent(AgentCmd::List { tenant }) => api.call(
            "GET",
            &format!("/v1/admin/tenants/{tenant}/agents"),
            Body::Empty,
        )?,
        AdminCommand::Bootstrap(BootstrapCmd::Issue {
            tenant,
            agent,
            ttl,
            rotate,
            out,
        }) => {
            let reply = api.call(
                "POST",
                &format!("/v1/admin/tenants/{tenant}/agents/{agent}/bootstrap-credentials"),
                Body::Json(json!({"ttl_secs": ttl, "rotate": rotate})),
            )?;
            match (reply, out) {
                (Ok(mut body), Some(out)) => {
                    let secret = body
                        .get("secret")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    crate::keys::write_private_file(out, format!("{secret}\n").as_bytes())
                        .map_err(|e| e.to_string())?;
                    if let Some(map) = body.as_object_mut() {
                        map.insert(
                            "secret".into(),
                            json!(format!("written to {}", out.display())),
                        );
                    }
                    Ok(body)
                }
                (other, _) => other,
            }
        }
        AdminCommand::Bootstrap(BootstrapCmd::Revoke { tenant, id }) => api.call(
            "DELETE",
            &format!("/v1/admin/tenants/{tenant}/bootstrap-credentials/{id}"),
            Body::Empty,
        )?,
        AdminCommand::Revoke(what) => {
            let (tenant, body) = match what {
                RevokeCmd::Token { tenant, jti } => (tenant, json!({"kind": "token", "jti": jti})),
                RevokeCmd::Agent { tenant, agent } => {
                    (tenant, json!({"kind": "agent", "agent_id": agent}))
                }
                RevokeCmd::Tenant { tenant } => (tenant, json!({"kind": "tenant"})),
            };
            api.call(
                "POST",
                &format!("/v1/admin/tenants/{tenant}/revocations"),
                Body::Json(body),
            )?
        }
        AdminCommand::Audit(AuditCmd::List {
            tenant,
            after,
            limit,
        }) => {
            let path = match tenant {
                Some(t) => format!("/v1/admin/tenants/{t}/audit?after={after}&limit={limit}"),
                None => format!("/v1/admin/audit?after={after}&limit={limit}"),
            };
            api.call("GET", &path, Body::Empty)?
        }
        AdminCommand::Audit(AuditCmd::Export { out }) => {
            let entries = fetch_all(&api)?;
            let text: String = entries
                .iter()
                .filter_map(|e| serde_json::to_string(e).ok())
                .map(|l| l + "\n")
                .collect();
            match out {
                Some(path) => {
                    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?
                }
                None => print!("{text}"),
            }
            return Ok(Outcome::Printed);
        }
        AdminCommand::Audit(AuditCmd::Verify { file: _ }) => {
            return verify_entries(fetch_all(&api)?)
        }
        AdminCommand::Keys(KeysCmd::Rotate) => {
            api.call("POST", "/v1/admin/keys/rotate", Body::Empty)?
        }
        AdminCommand::Keys(KeysCmd::Revoke { kid }) => {
            api.call("POST", &format!("/v1/admin/keys/{kid}/revoke"), Body::Empty)?
        }
    };
    match result {
        Ok(body) => {
            println!("{body}");
            Ok(Outcome::Printed)
        }
        Err(body) => Ok(Outcome::Refused(body)),
    }
}

/// Every audit entry, page by page.
fn fetch_all(api: &Api) -> Result<Vec<AuditEntry>, String> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = match api.call(
            "GET",
            &format!("/v1/admin/audit?after={after}&limit=10000"),
            Body::Empty,
        )? {
            Ok(body) => body,
            Err(body) => return Err(format!("the broker refused: {body}")),
        };
        let entries: Vec<AuditEntry> =
            serde_json::from_value(page.get("entries").cloned().unwrap_or_default())
                .map_err(|e| format!("unexpected audit page: {e}"))?;
        let Some(last) = entries.last() else {
            return Ok(all);
        };
        after = last.seq;
        all.extend(entries);
    }
}

fn parse_lines(text: &str) -> Result<Vec<AuditEntry>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

fn verify_entries(entries: Vec<AuditEntry>) -> Result<Outcome, String> {
    match audit::verify_chain(&entries) {
        Ok(head) => {
            println!(
                "{}",
                json!({"valid": true, "entries": entries.len(), "head": head})
            );
            Ok(Outcome::Printed)
        }
        Err(e) => Ok(Outcome::Refused(
            json!({"valid": false, "entries": entries.len(), "error": e.to_string()}),
        )),
    }
}
