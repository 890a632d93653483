//! The external tools the HTTP scenarios drive: `wrk` for load (its own
//! process, so the client's cost is not Rollcall's) and `nginx` as the
//! reference reverse proxy. `bench/run` installs both from Debian.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// One `wrk` run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx/3xx, plus socket errors.
    pub errors: u64,
}

/// `wrk` with `connections` connections on 2 threads for `secs` seconds.
pub fn wrk(
    url: &str,
    headers: &[(&str, &str)],
    connections: u32,
    secs: u32,
) -> anyhow::Result<Load> {
    let mut cmd = Command::new("wrk");
    cmd.args(["--latency", "-t2"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"));
    for (name, value) in headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    let out = cmd
        .arg(url)
        .output()
        .context("cannot run wrk (bench/run installs it: apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> anyhow::Result<Load> {
    let mut load = Load {
        per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => load.p50_ms = duration_ms(v).unwrap_or(0.0),
            ["99%", v] => load.p99_ms = duration_ms(v).unwrap_or(0.0),
            ["Requests/sec:", v] => load.per_sec = v.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if load.per_sec <= 0.0 {
        bail!("wrk printed no throughput:\n{out}");
    }
    Ok(load)
}

/// An nginx reverse proxy in front of `upstream` (host:port) that sets
/// `header` on every request, as Rollcall's proxy injects a credential.
pub struct Nginx {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    pub async fn start(upstream: &str, header: (&str, &str)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.path().display();
        // One worker per core, keep-alive to the upstream: nginx as it is
        // deployed in front of an API, not its defaults.
        let conf = format!(
            "worker_processes auto;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream vendor {{ server {upstream}; keepalive 64; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://vendor;\n\
                 proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
                 proxy_set_header {} \"{}\";\n    }}\n  }}\n}}\n",
            header.0, header.1
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new(nginx_binary())
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx (bench/run installs it: apt-get install nginx-light)")?;
        let url = format!("http://127.0.0.1:{port}");
        let nginx = Self {
            child,
            url: url.clone(),
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(nginx);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nginx did not start listening on {url}")
    }
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 5s test @ http://x\n  2 threads and 16 connections\n\
          Latency Distribution\n     50%  635.00us\n     75%    1.10ms\n     90%    2.00ms\n     99%    3.21ms\n\
          50000 requests in 5.00s, 10.00MB read\n  Non-2xx or 3xx responses: 3\n\
          Requests/sec:  10000.50\nTransfer/sec:      2.00MB\n";
        let load = parse_wrk(out).unwrap_or(Load {
            per_sec: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            errors: 0,
        });
        assert!((load.per_sec - 10000.5).abs() < 1e-9);
        assert!((load.p50_ms - 0.635).abs() < 1e-9);
        assert!((load.p99_ms - 3.21).abs() < 1e-9);
        assert_eq!(load.errors, 3);
    }
}
