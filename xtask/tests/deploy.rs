//! The deployment files shipped in `deploy/`: the systemd unit parses cleanly under
//! `systemd-analyze verify` and keeps its hardening (`systemd-analyze security`).

use std::path::Path;
use std::process::Command;

use xtask::tasks::{require, SYSTEMD_ANALYZE};

/// The shipped unit, with `ExecStart` pointing at the binary this build made (verify checks that
/// the command exists and is executable).
fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/magiclink.service");
    let text = std::fs::read_to_string(shipped).expect("deploy/magiclink.service is readable");
    assert!(text.contains("ExecStart=/usr/local/bin/magiclink serve"), "the unit runs the installed binary");
    let unit = dir.join("magiclink.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/magiclink", env!("CARGO_BIN_EXE_magiclink")))
        .expect("unit written");
    unit
}

#[test]
fn the_systemd_unit_verifies_without_a_single_warning() {
    let Some(systemd_analyze) = require(&SYSTEMD_ANALYZE) else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    let unit = unit_for_this_build(dir.path());

    let output = Command::new(systemd_analyze).arg("verify").arg(&unit).output().expect("systemd-analyze runs");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // verify exits 0 on unknown keys and bad values, only warning about them.
    assert!(stderr.trim().is_empty(), "warnings: {stderr}");
}

#[test]
fn the_systemd_unit_keeps_its_sandbox() {
    let Some(systemd_analyze) = require(&SYSTEMD_ANALYZE) else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    let unit = unit_for_this_build(dir.path());

    let output = Command::new(systemd_analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");

    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let exposure: f64 = text
        .split("Overall exposure level for magiclink.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    // systemd rates 0 to 10; up to 2 is its "OK" band. The shipped unit scores about 1.2.
    assert!(exposure <= 2.0, "exposure {exposure} (was about 1.2): {text}");
}
