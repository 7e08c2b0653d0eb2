//! An example agent: asks its sidecar for a token and a DPoP proof for one outgoing call, and
//! shows the request it would send. The token stays in memory; ask the sidecar again for the
//! next call rather than keeping it.
//!
//!     cargo run -p attest-sidecar --example agent -- /run/attest-sidecar/agent.sock \
//!         POST https://tools.internal.example/v1/invoke

use std::process::ExitCode;

use attest_sidecar::agent::{AgentClient, AgentError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, method, url] = args.as_slice() else {
        eprintln!("usage: agent SOCKET METHOD URL");
        return ExitCode::from(2);
    };
    let sidecar = AgentClient::new(socket);
    match sidecar.proof(method, url, None) {
        Ok(call) => {
            // A real agent sends these two headers with its request; here we show their
            // shape only (never print a token in a real agent).
            println!("{method} {url}");
            println!(
                "Authorization: DPoP <token, {} s left>",
                call.token.expires_in
            );
            println!(
                "DPoP: <proof, {} bytes, signed by the hardware-bound key>",
                call.dpop.len()
            );
            ExitCode::SUCCESS
        }
        Err(AgentError::Refused { status: 503, code }) => {
            eprintln!("the sidecar has no token yet ({code}); retry shortly");
            ExitCode::from(75)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
