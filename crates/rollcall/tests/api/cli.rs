//! The real `rollcall` executable, driven as a user would.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::{rollcall_bin, spawn_app};

#[tokio::test]
async fn keys_create_prints_only_the_key_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let out = rollcall_bin()
        .args(["keys", "create", "--tenant", "acme", "--database-url", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.trim();
    assert!(key.starts_with("rk_key") && !key.contains('\n'), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only this once"));

    let bad = rollcall_bin()
        .args([
            "keys",
            "create",
            "--tenant",
            "not a name",
            "--database-url",
            &db,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tenant name"));
}

#[tokio::test]
async fn unknown_environment_variables_stop_the_binary_with_their_name() {
    let out = rollcall_bin()
        .arg("migrate")
        .env("ROLLCALL_DATABSE_URL", "sqlite://typo.db")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ROLLCALL_DATABSE_URL"), "{stderr}");
}

#[tokio::test]
async fn migrate_creates_the_store_and_healthcheck_reports_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let out = rollcall_bin()
        .args(["migrate", "--database-url", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("m.db").exists());

    let app = spawn_app().await;
    let ok = tokio::task::spawn_blocking({
        let url = app.base_url.clone();
        move || {
            rollcall_bin()
                .args(["healthcheck", "--url", &url])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Nothing listens on port 9 (discard) here.
    let down = rollcall_bin()
        .args(["healthcheck", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("j.db").display());
    let out = rollcall_bin()
        .args(["--log-format", "json", "migrate", "--database-url", &db])
        .env("ROLLCALL_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json_lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!json_lines.is_empty(), "no JSON log lines in: {stderr}");
    assert!(
        json_lines
            .iter()
            .all(|l| l.get("level").is_some() && l.get("timestamp").is_some())
    );
}

/// The demo starts from nothing, serves, and stops cleanly on Ctrl-C.
#[test]
fn demo_serves_and_stops_cleanly_on_interrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = rollcall_bin()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "20",
            "--data-dir",
        ])
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut printed = Vec::new();
    let api = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("demo printed nothing");
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("Rollcall demo is serving at ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60));
    };
    // The rest of the banner: the key, then the commands to try.
    let mut banner = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        let done = line.starts_with("Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    let key = banner
        .iter()
        .find(|l| l.trim_start().starts_with("rk_"))
        .expect("the key is printed")
        .trim()
        .to_owned();
    assert!(key.starts_with("rk_key"));
    let health = reqwest::blocking::get(format!("{api}/readyz")).unwrap();
    assert_eq!(health.status(), 200);
    // Its Mode and Metabase accounts were linked through the API.
    let accounts: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{api}/integrated-accounts"))
        .bearer_auth(&key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let providers: Vec<&str> = accounts["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers.len(), 2);
    assert!(providers.contains(&"mode") && providers.contains(&"metabase"));
    let metabase = accounts["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["provider"] == "metabase")
        .unwrap();
    let users = reqwest::blocking::Client::new()
        .get(format!(
            "{api}/proxy/{}/api/user?limit=3",
            metabase["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .unwrap();
    assert_eq!(users.status(), 200);

    // The printed sync command syncs (and says so); then the printed CLI
    // commands list users and groups of both accounts, the cache included.
    let run = |command: &str| {
        let mut words = command.split_whitespace();
        let program = words.next().unwrap();
        std::process::Command::new(program)
            .args(words)
            .env("ROLLCALL_URL", &api)
            .env("ROLLCALL_API_KEY", &key)
            .output()
            .unwrap()
    };
    let sync = banner
        .iter()
        .find(|l| l.contains(" sync --account "))
        .expect("a sync command is printed");
    let synced = run(sync);
    let summary = String::from_utf8_lossy(&synced.stdout);
    assert!(
        synced.status.success(),
        "{sync}: {summary}{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    assert!(summary.contains("succeeded"), "{summary}");
    let events = banner
        .iter()
        .find(|l| l.trim_end().ends_with(" events"))
        .unwrap();
    let listed = run(events);
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("sync_run.completed"));
    let commands: Vec<&String> = banner
        .iter()
        .filter(|l| l.contains(" users list --account ") || l.contains(" groups list --account "))
        .collect();
    assert_eq!(commands.len(), 5, "{banner:#?}");
    for command in commands {
        let output = run(command);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.starts_with("ID "), "{command}: {stdout}");
        assert!(
            stdout.lines().count() > 1,
            "{command} listed nothing: {stdout}"
        );
    }

    // Governance: once the first Mode sync is in, the printed people report
    // joins the people the demo gave accounts in both tools.
    let people_command = banner
        .iter()
        .find(|l| l.trim_end().ends_with(" reports people"))
        .expect("a people report command is printed");
    let joined = (0..120).find_map(|_| {
        let output = run(&format!("{} --json", people_command.trim()));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let people: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let both = people
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["accounts"].as_array().unwrap().len() == 2)
            .count();
        if both > 0 {
            return Some(both);
        }
        // A plain #[test] thread: there is no runtime here to block.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(500));
        None
    });
    assert!(
        joined.is_some_and(|n| n >= 2),
        "people in both tools: {joined:?}"
    );
    for report in [" reports admins", " reports inactive --days 30"] {
        let command = banner
            .iter()
            .find(|l| l.trim_end().ends_with(report))
            .unwrap();
        let output = run(command);
        assert!(output.status.success(), "{command}");
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("PROVIDER "));
    }
    let plan_command = banner
        .iter()
        .find(|l| l.contains(" plan --account "))
        .expect("a plan command is printed");
    let planned = run(plan_command);
    let table = String::from_utf8_lossy(&planned.stdout);
    assert!(
        planned.status.success(),
        "{plan_command}: {}",
        String::from_utf8_lossy(&planned.stderr)
    );
    assert!(table.contains("add_group_membership"), "{table}");

    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "demo exited with {exit:?}");
}

/// `rollcall users list | head` must end quietly when the reader goes away.
#[tokio::test]
async fn client_commands_survive_a_closed_stdout() {
    let app = spawn_app().await;
    let account = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let (url, key, id) = (app.base_url.clone(), app.key.clone(), account.id.clone());
    let output = tokio::task::spawn_blocking(move || {
        let mut child = rollcall_bin()
            .args([
                "users",
                "list",
                "--account",
                &id,
                "--url",
                &url,
                "--api-key",
                &key,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the command writes its first line.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
