//! The end-to-end benchmark's harness, run as a smoke test (`loadgen run --quick` on the debug
//! build) so that it cannot rot: every phase runs and every answer passes its check. The
//! figures of a debug build mean nothing and are not asserted.

use std::process::Command;

#[test]
fn the_quick_benchmark_runs_every_phase_and_every_answer_passes_its_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The `magiclink` binary is another package's (xtask's): `cargo test --workspace` builds it
    // beside this one, for xtask's own tests.
    let loadgen = std::path::Path::new(env!("CARGO_BIN_EXE_loadgen"));
    let magiclink = loadgen.with_file_name(format!("magiclink{}", std::env::consts::EXE_SUFFIX));
    assert!(
        magiclink.exists(),
        "{} is not built: run the whole suite (`cargo xtask test`), or `cargo build -p xtask --bin magiclink` first",
        magiclink.display()
    );
    let output = Command::new(loadgen)
        .args(["run", "--quick", "--magiclink"])
        .arg(&magiclink)
        .arg("--config-dir")
        .arg(root.join("config"))
        .env_remove("DATABASE_URL")
        .env_remove("AUTH_SECRET")
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(output.status.success(), "loadgen failed:\n{stdout}\n{stderr}");
    for phase in [
        "baseline read",
        "session check",
        "session check, password burst",
        "password guesses (the burst)",
        "sign-in, 1 client",
        "sign-in, 16 clients",
        "5 session",
        "passkey sign-in, 1 client",
        "3 assertion",
        "OIDC sign-in, 1 client",
        "OIDC sign-in, 16 clients",
        "2 token",
        "session check, sign-in burst",
        "sign-ins (the burst)",
    ] {
        assert!(stdout.contains(phase), "no {phase:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("session check / baseline read:"), "{stdout}");
    assert!(stdout.contains("session check during a password burst / without:"), "{stdout}");
    assert!(stdout.contains("passkey sign-in / link sign-in at 1 client:"), "{stdout}");
    assert!(stdout.contains("session check during a 16-client sign-in burst / without:"), "{stdout}");
}
