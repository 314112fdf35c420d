//! The systemd unit in `docs/iamlease.service`. Where `systemd-analyze` exists (it does on the
//! test machines: Debian's `systemd` package), `systemd-analyze verify` checks a copy whose
//! `ExecStart` points at the built binary (verify needs the program to exist), and any warning
//! it prints (an unknown key, a bad value: it still exits 0 for those) fails the test. Without
//! it the test says so and relies on the content checks, which always run: the hardening keys
//! are there, and every flag of `ExecStart` is one `iamlease server --help` knows.

use std::process::Command;

const UNIT: &str = include_str!("../../docs/iamlease.service");
const INSTALLED_BINARY: &str = "/usr/local/bin/iamlease";

#[test]
fn the_systemd_unit_verifies_and_its_flags_exist() {
    for key in [
        "Type=simple",
        "ExecStart=/usr/local/bin/iamlease server --config /etc/iamlease/config.toml",
        "User=iamlease",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/iamlease",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "WantedBy=multi-user.target",
    ] {
        assert!(UNIT.contains(key), "docs/iamlease.service lacks {key:?}");
    }

    let exec_start = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = exec_start.split_whitespace();
    assert_eq!(words.next(), Some(INSTALLED_BINARY));
    assert_eq!(words.next(), Some("server"));
    let help = Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["server", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in words.filter(|w| w.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")),
            "ExecStart passes {flag}, which `iamlease server --help` does not list:\n{help}"
        );
    }

    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: only the unit's content was checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("iamlease.service");
    std::fs::write(
        &unit,
        UNIT.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_iamlease")),
    )
    .unwrap();
    let o = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "systemd-analyze verify: {said}");
    assert_eq!(said.trim(), "", "systemd-analyze verify warned");
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
