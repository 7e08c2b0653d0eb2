//! `attest-broker bench`: a load generator for the service. Starts a `--dev` broker of its own
//! (or drives `--broker`), enrolls simulated SEV-SNP hosts, and reports throughput and
//! p50/p99/p999 latency for attest and refresh, beside a bare ECDSA P-384 verification loop
//! measured in the same run on the same cores.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{Body, Client};
use crate::host::SimHost;

/// `bench` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Concurrent simulated hosts (worker threads) for the bare-HTTP and attest phases.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Concurrent hosts for the refresh phase (few in flight keep its p99 low on 2 cores).
    #[arg(long, default_value_t = 8)]
    pub refresh_concurrency: usize,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Drive an already running `--dev` broker at this URL (with --data-dir) instead of
    /// starting one.
    #[arg(long, requires = "data_dir")]
    pub broker: Option<String>,
    /// The running broker's data directory (admin credential, simulated roots).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The running broker's pid, to report its CPU time per request.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Run only the refresh phase (for profiling).
    #[arg(long)]
    pub refresh_only: bool,
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks per second, asked once.
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(100.0)
    });
    Some((utime + stime) / ticks)
}

/// Runs `phase`; with it, the CPU seconds the broker (`pid`) and this process spent meanwhile.
fn with_cpu<T>(pid: Option<&str>, phase: impl FnOnce() -> T) -> (T, Option<f64>, Option<f64>) {
    let before = (pid.and_then(cpu_seconds), cpu_seconds("self"));
    let result = phase();
    let spent = |now: Option<f64>, then: Option<f64>| now.zip(then).map(|(b, a)| b - a);
    let broker = spent(pid.and_then(cpu_seconds), before.0);
    let this = spent(cpu_seconds("self"), before.1);
    (result, broker, this)
}

struct Spawned {
    child: Child,
    _dir: PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// Latencies of one phase.
#[derive(Debug, Default)]
struct Phase {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(idx).map(|us| *us as f64 / 1000.0).unwrap_or(f64::NAN)
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn report(&self) -> Value {
        json!({
            "ok": self.ok, "failed": self.failed, "seconds": self.elapsed.as_secs_f64(),
            "per_second": self.rate(),
            "p50_ms": self.percentile(0.50), "p99_ms": self.percentile(0.99), "p999_ms": self.percentile(0.999),
        })
    }
}

/// Runs the benchmark and prints one JSON report on stdout.
pub fn run(args: &BenchArgs) -> std::process::ExitCode {
    match bench(args) {
        Ok(report) => {
            println!("{report:#}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("attest-broker bench: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn spawn_broker() -> Result<(Spawned, String, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("attest-broker-bench-{}", std::process::id()));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        // The broker's default level, as operators run it: a span per request.
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .map_err(|e| e.to_string())?;
    let ready: Value =
        serde_json::from_str(&line).map_err(|e| format!("broker said {line:?}: {e}"))?;
    let url = format!(
        "http://{}",
        ready
            .get("listening")
            .and_then(Value::as_str)
            .ok_or("no address")?
    );
    Ok((
        Spawned {
            child,
            _dir: dir.clone(),
        },
        url,
        dir,
    ))
}

fn bench(args: &BenchArgs) -> Result<Value, String> {
    let (spawned, url, data) = match (&args.broker, &args.data_dir) {
        (Some(url), Some(dir)) => (None, url.clone(), dir.clone()),
        _ => {
            let (s, u, d) = spawn_broker()?;
            (Some(s), u, d)
        }
    };
    let broker_pid = spawned
        .as_ref()
        .map(|s| s.child.id().to_string())
        .or(args.broker_pid.map(|p| p.to_string()));
    let admin_secret =
        std::fs::read_to_string(data.join("admin-credential")).map_err(|e| e.to_string())?;
    let admin = Client::new(&url);
    let auth = format!("Bearer {}", admin_secret.trim());
    let call = |method: &str, path: &str, body: Body| -> Result<Value, String> {
        let r = admin
            .send(method, path, &[("authorization", &auth)], body)
            .map_err(|e| e.0)?;
        if r.ok() || r.status == 409 {
            Ok(r.body)
        } else {
            Err(format!("{method} {path}: {} {}", r.status, r.body))
        }
    };
    let roots_dir = data.join(crate::serve::DEV_SIMULATED_ROOTS);
    let probe = SimHost::from_roots_dir(&roots_dir)?;
    call(
        "POST",
        "/v1/admin/tenants",
        Body::Json(json!({"id": "bench"})),
    )?;
    call(
        "PUT",
        "/v1/admin/tenants/bench/policies/bench",
        Body::Json(json!({
            "audiences": ["bench"], "scopes": ["bench"], "allow_simulated": true, "token_ttl_secs": 3600,
            "sev_snp": {"measurements": [probe.measurement()]}
        })),
    )?;
    let mut workers = Vec::new();
    for i in 0..args.concurrency.max(args.refresh_concurrency) {
        let agent = format!("bench-{}-{i}", std::process::id());
        call(
            "POST",
            "/v1/admin/tenants/bench/agents",
            Body::Json(json!({"agent_id": agent, "class": "bench"})),
        )?;
        let issued = call(
            "POST",
            &format!("/v1/admin/tenants/bench/agents/{agent}/bootstrap-credentials"),
            Body::Empty,
        )?;
        let secret = issued
            .get("secret")
            .and_then(Value::as_str)
            .ok_or("no secret")?
            .to_string();
        workers.push((SimHost::from_roots_dir(&roots_dir)?, secret));
    }
    let workers = Arc::new(workers);
    let seconds = Duration::from_secs(args.seconds);
    let attest_seconds = if args.refresh_only {
        Duration::ZERO
    } else {
        seconds
    };

    eprintln!("bench: bare P-384 verify on every core…");
    // The baselines and the HTTP floor need only a few seconds each.
    let short = attest_seconds.min(Duration::from_secs(3));
    let p384 = p384_capacity(short);
    eprintln!("bench: bare P-384 signing (the simulated secure processor) on every core…");
    let p384_sign = p384_sign_capacity(short);
    eprintln!("bench: bare ES256 token signing on every core…");
    let es256_sign = es256_sign_capacity(short);
    eprintln!("bench: bare HTTP requests (GET /healthz) at full load…");
    let (floor, floor_cpu, floor_gen_cpu) = with_cpu(broker_pid.as_deref(), || {
        drive(
            &url,
            &workers,
            args.concurrency,
            short,
            None,
            |_, client, _, _| {
                let started = Instant::now();
                let reply = client
                    .send("GET", "/healthz", &[], Body::Empty)
                    .map_err(|e| e.0)?;
                let took = started.elapsed();
                if reply.ok() {
                    Ok(took)
                } else {
                    Err(format!("/healthz: {}", reply.status))
                }
            },
        )
    });
    eprintln!("bench: attest at full load…");
    let (attest, attest_cpu, attest_gen_cpu) = with_cpu(broker_pid.as_deref(), || {
        drive(
            &url,
            &workers,
            args.concurrency,
            attest_seconds,
            None,
            attest_once,
        )
    });
    eprintln!("bench: attest at half the measured peak…");
    let half = attest.rate() / 2.0;
    let attest_half = drive(
        &url,
        &workers,
        args.concurrency,
        attest_seconds,
        Some(half),
        attest_once,
    );
    eprintln!("bench: refresh at full load…");
    let tokens: Vec<Mutex<String>> = workers
        .iter()
        .take(args.refresh_concurrency)
        .map(|(host, secret)| {
            host.attest(&Client::new(&url), secret)
                .map(|h| Mutex::new(h.token))
        })
        .collect::<Result<_, _>>()?;
    let tokens = Arc::new(tokens);
    let (refresh, refresh_cpu, refresh_gen_cpu) = with_cpu(broker_pid.as_deref(), || {
        let tokens = tokens.clone();
        drive(
            &url,
            &workers,
            args.refresh_concurrency,
            seconds,
            None,
            move |host, client, _, i| {
                let slot = tokens.get(i).ok_or("no token")?;
                let current = slot.lock().map_err(|_| "poisoned")?.clone();
                let started = Instant::now();
                let next = host.refresh(client, &current)?;
                let took = started.elapsed();
                *slot.lock().map_err(|_| "poisoned")? = next.token;
                Ok(took)
            },
        )
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per = |cpu: Option<f64>, phase: &Phase| cpu.map(|c| c * 1e6 / phase.ok.max(1) as f64);
    let attest_broker_us = per(attest_cpu, &attest);
    // What the broker alone could do with every core: cores / CPU seconds per attestation.
    let attest_broker_capacity = attest_broker_us.map(|us| cores as f64 * 1e6 / us);
    let floor_broker_us = per(floor_cpu, &floor);
    let floor_generator_us = per(floor_gen_cpu, &floor);
    let ceilings = Ceilings {
        verify_us: cores as f64 * 1e6 / p384,
        sign_us: cores as f64 * 1e6 / p384_sign,
        token_sign_us: cores as f64 * 1e6 / es256_sign,
        request_broker_us: floor_broker_us,
        request_generator_us: floor_generator_us,
    };
    Ok(json!({
        "cores": cores,
        "concurrency": args.concurrency,
        "refresh_concurrency": args.refresh_concurrency,
        "p384_verify_per_second_all_cores": p384,
        "attest": attest.report(),
        "attest_vs_p384_capacity": attest.rate() / p384,
        "attest_broker_cpu_us_each": attest_broker_us,
        "attest_generator_cpu_us_each": per(attest_gen_cpu, &attest),
        "attest_broker_capacity_per_second": attest_broker_capacity,
        "attest_broker_capacity_vs_p384_capacity": attest_broker_capacity.map(|c| c / p384),
        "ceilings": ceilings.report(),
        "refresh_broker_cpu_us_each": per(refresh_cpu, &refresh),
        "refresh_generator_cpu_us_each": per(refresh_gen_cpu, &refresh),
        "attest_at_half_peak": attest_half.report(),
        "http_floor": {
            "requests_per_second": floor.rate(),
            "broker_cpu_us_each": floor_broker_us,
            "generator_cpu_us_each": floor_generator_us,
        },
        "refresh": refresh.report(),
    }))
}

/// The best attest-to-P-384 ratios any broker could reach in this run, from costs measured in
/// it: an attestation needs at least one P-384 verification (the broker), one P-384 signature
/// (the simulated secure processor, on the same cores), two HTTP requests (challenge, attest)
/// at the measured per-request floor, and one ES256 signature (the token). Everything else a
/// broker does (parsing, appraisal, storage, audit) only lowers these.
struct Ceilings {
    /// Core time of one bare P-384 verification.
    verify_us: f64,
    /// Core time of one bare P-384 signature over a report.
    sign_us: f64,
    /// Core time of one ES256 signature over a token (the broker's signing key).
    token_sign_us: f64,
    /// Broker CPU per bare HTTP request (`GET /healthz`).
    request_broker_us: Option<f64>,
    /// Generator CPU per bare HTTP request.
    request_generator_us: Option<f64>,
}

impl Ceilings {
    fn report(&self) -> Value {
        let two_requests = |broker: Option<f64>, generator: Option<f64>| {
            broker.zip(generator).map(|(b, g)| 2.0 * (b + g))
        };
        // Throughput ratio = (cores / CPU per attestation) / (cores / CPU per verification).
        let ratio = |cpu_us: f64| self.verify_us / cpu_us;
        let all = two_requests(self.request_broker_us, self.request_generator_us)
            .map(|http| self.verify_us + self.sign_us + self.token_sign_us + http);
        let broker_only = self
            .request_broker_us
            .map(|r| self.verify_us + self.token_sign_us + 2.0 * r);
        json!({
            "p384_verify_cpu_us": self.verify_us,
            "p384_sign_cpu_us": self.sign_us,
            "es256_sign_cpu_us": self.token_sign_us,
            "attest_min_cpu_us_generator_on_same_cores": all,
            "attest_vs_p384_capacity_at_best": all.map(ratio),
            "attest_broker_min_cpu_us": broker_only,
            "attest_broker_capacity_vs_p384_capacity_at_best": broker_only.map(ratio),
        })
    }
}

/// ECDSA P-384 verifications per second with one thread per core.
fn p384_capacity(duration: Duration) -> f64 {
    let Some(key) = p384_sample() else {
        return f64::NAN;
    };
    on_every_core(duration, move || {
        crate::crypto::verify_p384_sha384(&key.0, b"bench", &key.1)
    })
}

/// ECDSA P-384 signatures over a report-sized message per second with one thread per core:
/// what the simulated AMD secure processor spends on each report it signs.
fn p384_sign_capacity(duration: Duration) -> f64 {
    let Ok(key) = attest_fixtures::crypto::P384Key::generate() else {
        return f64::NAN;
    };
    // The signed part of an SEV-SNP attestation report (ABI spec table 22: bytes 0x0–0x29F).
    let report = [0x5a_u8; 0x2a0];
    let key = Arc::new(key);
    on_every_core(duration, move || key.sign_sha384_fixed(&report).is_ok())
}

/// ES256 token signatures per second with one thread per core, with the broker's signer.
fn es256_sign_capacity(duration: Duration) -> f64 {
    let Ok((key, _)) = crate::crypto::SigningKey::generate() else {
        return f64::NAN;
    };
    // About the size of a token's signing input.
    let input = [b'e'; 700];
    let key = Arc::new(key);
    on_every_core(duration, move || key.sign(&input).is_ok())
}

/// Runs `op` in a loop on one thread per core for `duration`; successful calls per second.
fn on_every_core<F>(duration: Duration, op: F) -> f64
where
    F: Fn() -> bool + Send + Sync + 'static,
{
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let op = Arc::new(op);
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (count, stop, op) = (count.clone(), stop.clone(), op.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if op() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// A P-384 public key and a valid signature over `b"bench"`, made with simulated hardware.
fn p384_sample() -> Option<Arc<(Vec<u8>, Vec<u8>)>> {
    let key = attest_fixtures::crypto::P384Key::generate().ok()?;
    let sig = key.sign_sha384_fixed(b"bench").ok()?;
    Some(Arc::new((key.public_point().to_vec(), sig.to_vec())))
}

/// One attestation; the latency is the `POST /v1/attest` round trip (verification, appraisal,
/// token mint, audit write), not the challenge or the host signing its evidence.
fn attest_once(
    host: &SimHost,
    client: &Client,
    secret: &str,
    _: usize,
) -> Result<Duration, String> {
    let nonce = host.challenge(client)?;
    let body = host.attest_body(&nonce)?;
    let started = Instant::now();
    let reply = host.post_attest(client, secret, body).map_err(|e| e.0)?;
    let took = started.elapsed();
    if reply.ok() {
        Ok(took)
    } else {
        Err(format!("{} {}", reply.status, reply.body))
    }
}

/// Work done per iteration; returns the latency to record.
type Work = dyn Fn(&SimHost, &Client, &str, usize) -> Result<Duration, String> + Send + Sync;

/// Runs `work` on the first `threads` workers for `duration`, optionally paced to `rate` per
/// second overall.
fn drive<F>(
    url: &str,
    workers: &Arc<Vec<(SimHost, String)>>,
    threads: usize,
    duration: Duration,
    rate: Option<f64>,
    work: F,
) -> Phase
where
    F: Fn(&SimHost, &Client, &str, usize) -> Result<Duration, String> + Send + Sync + 'static,
{
    let work: Arc<Work> = Arc::new(work);
    let phase = Arc::new(Mutex::new(Phase::default()));
    let start = Instant::now();
    let threads = threads.min(workers.len());
    let n = threads.max(1);
    let interval = rate.map(|r| Duration::from_secs_f64(n as f64 / r.max(0.001)));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (workers, work, phase, url) = (
                workers.clone(),
                work.clone(),
                phase.clone(),
                url.to_string(),
            );
            std::thread::spawn(move || {
                let client = Client::new(&url);
                let Some((host, secret)) = workers.get(i) else {
                    return;
                };
                let mut local = Phase::default();
                // Paced workers start spread over one interval, not all at once.
                let mut next =
                    Instant::now() + interval.map_or(Duration::ZERO, |d| d * i as u32 / n as u32);
                while start.elapsed() < duration {
                    if let Some(interval) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += interval;
                    }
                    match work(host, &client, secret, i) {
                        Ok(took) => {
                            local.ok += 1;
                            local.latencies_us.push(took.as_micros() as u64);
                        }
                        Err(_) => local.failed += 1,
                    }
                }
                if let Ok(mut p) = phase.lock() {
                    p.ok += local.ok;
                    p.failed += local.failed;
                    p.latencies_us.extend(local.latencies_us);
                }
            })
        })
        .collect();
    for t in handles {
        let _ = t.join();
    }
    let mut result = std::mem::take(&mut *phase.lock().unwrap_or_else(|p| p.into_inner()));
    result.elapsed = start.elapsed();
    result
}
