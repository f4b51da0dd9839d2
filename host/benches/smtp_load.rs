//! Load generator: many concurrent SMTP clients over loopback against a
//! real `postern serve`, every check and policy on (DNS from the zone file
//! `tests/fixtures/serve/zone.txt` served on loopback, SPF passing for
//! 127.0.0.1, the 10 KB fixture with unique text per message so duplicates
//! never short-cut the pipeline), spool on the local disk with fsync.
//! Reports messages/s and p50/p99/max latency (MAIL FROM to the final
//! reply after the message).
//!
//! `cargo bench -p postern --bench smtp_load -- [--clients N] [--seconds S]
//! [--server HOST:PORT] [--spool DIR]` (without `--server` it starts the
//! release binary itself with a config in a temporary directory, its spool
//! there too unless `--spool` names one, e.g. on tmpfs to measure the CPU
//! alone: `--spool /dev/shm/postern-spool`, left in place afterwards).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;

struct Args {
    clients: usize,
    seconds: u64,
    warmup: u64,
    server: Option<SocketAddr>,
    spool: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args { clients: 32, seconds: 10, warmup: 2, server: None, spool: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds S"),
            "--warmup" => a.warmup = value().parse().expect("--warmup S"),
            "--server" => a.server = Some(value().parse().expect("--server HOST:PORT")),
            "--spool" => a.spool = Some(PathBuf::from(value())),
            // cargo bench passes --bench; anything else is a mistake.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Starts the release binary; returns the child and its SMTP address.
fn start_server(dir: &std::path::Path, spool: &std::path::Path) -> (std::process::Child, SocketAddr) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "reply_domain = \"reply.example.test\"\n[dns]\nzone_file = \"{}\"\n[directory]\nfile = \"{}\"\n\
             [rate_limit]\n# One sender per message (its own sender rate); the workspace flood guard\n\
             # is raised so the load measures the pipeline, not the guard.\n\
             workspace = {{ count = 100000000, per_seconds = 60 }}\n\
             [server]\nsmtp_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\nspool_dir = \"{}\"\n\
             max_connections_per_ip = 1000\nlog_format = \"text\"\n",
            fixtures().join("serve/zone.txt").display(),
            fixtures().join("auth/workspaces.toml").display(),
            spool.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start postern serve");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.map_while(Result::ok) {
        if let Some(addr) = line.strip_prefix("postern: SMTP listening on ") {
            return (child, addr.parse().unwrap());
        }
    }
    let _ = child.kill();
    let status = child.wait();
    panic!("postern serve did not start ({status:?})");
}

/// The 10 KB fixture from `sender@customer.test`, with a unique line.
fn message(template: &str, client: usize, n: u64) -> (String, Vec<u8>) {
    let from = format!("load{client}x{n}@customer.test");
    let text = template.replace("support@vendor.test", &from).replacen(
        "Thank you for contacting",
        &format!("Reference {client}-{n}. Thank you for contacting"),
        1,
    );
    let mut data = Vec::with_capacity(text.len() + 8);
    for line in text.split_inclusive('\n') {
        if line.starts_with('.') {
            data.push(b'.');
        }
        data.extend_from_slice(line.as_bytes());
    }
    data.extend_from_slice(b".\r\n");
    (from, data)
}

#[derive(Default)]
struct Totals {
    ok: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

async fn read_reply(r: &mut TokioBufReader<tokio::net::tcp::OwnedReadHalf>, line: &mut String) -> std::io::Result<u16> {
    loop {
        line.clear();
        if r.read_line(line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(line.clone()));
        }
    }
}

/// One client: a connection that sends messages back to back, pipelining
/// MAIL, RCPT and DATA as real MTAs do; reconnects every 50 messages.
async fn client(
    id: usize,
    addr: SocketAddr,
    template: Arc<String>,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
    totals: Arc<Totals>,
) -> Vec<u32> {
    let mut latencies = Vec::new();
    let mut n = 0u64;
    let mut line = String::new();
    'connections: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(addr).await else {
            totals.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (r, mut w) = stream.into_split();
        let mut r = TokioBufReader::new(r);
        if read_reply(&mut r, &mut line).await.is_err()
            || w.write_all(b"EHLO load.test\r\n").await.is_err()
            || read_reply(&mut r, &mut line).await.is_err()
        {
            totals.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        for _ in 0..50 {
            if stop.load(Ordering::Relaxed) {
                break 'connections;
            }
            n += 1;
            let (from, data) = message(&template, id, n);
            let started = Instant::now();
            let head = format!("MAIL FROM:<{from}>\r\nRCPT TO:<help@support.acme.test>\r\nDATA\r\n");
            let result: std::io::Result<u16> = async {
                w.write_all(head.as_bytes()).await?;
                let (mail, rcpt, data_reply) = (
                    read_reply(&mut r, &mut line).await?,
                    read_reply(&mut r, &mut line).await?,
                    read_reply(&mut r, &mut line).await?,
                );
                if (mail, rcpt, data_reply) != (250, 250, 354) {
                    w.write_all(b"RSET\r\n").await?;
                    read_reply(&mut r, &mut line).await?;
                    return Ok(rcpt.max(mail));
                }
                w.write_all(&data).await?;
                read_reply(&mut r, &mut line).await
            }
            .await;
            match result {
                Ok(250) => {
                    if measuring.load(Ordering::Relaxed) {
                        totals.ok.fetch_add(1, Ordering::Relaxed);
                        latencies.push(started.elapsed().as_micros() as u32);
                    }
                }
                Ok(code) => {
                    if measuring.load(Ordering::Relaxed) {
                        totals.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    if totals.refused.load(Ordering::Relaxed) < 3 {
                        eprintln!("refused: {code} {}", line.trim_end());
                    }
                }
                Err(_) => {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    continue 'connections;
                }
            }
        }
        let _ = w.write_all(b"QUIT\r\n").await;
    }
    latencies
}

fn main() {
    let args = args();
    let dir = std::env::temp_dir().join(format!("postern-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (child, addr) = match args.server {
        Some(addr) => (None, addr),
        None => {
            let spool = args.spool.clone().unwrap_or_else(|| dir.join("spool"));
            let (child, addr) = start_server(&dir, &spool);
            (Some(child), addr)
        }
    };
    let template = Arc::new(std::fs::read_to_string(fixtures().join("bench-10k.eml")).unwrap());
    let size = template.len();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let (latencies, elapsed) = rt.block_on(async {
        let tasks: Vec<_> = (0..args.clients)
            .map(|i| tokio::spawn(client(i, addr, template.clone(), stop.clone(), measuring.clone(), totals.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, elapsed)
    });
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut latencies = latencies;
    latencies.sort_unstable();
    let q = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |us: Option<&u32>| us.map(|u| *u as f64 / 1000.0).unwrap_or(f64::NAN);
    let ok = totals.ok.load(Ordering::Relaxed);
    println!(
        "smtp_load: {} clients, {:.1} s, {size} B messages: {ok} accepted ({:.0} msg/s), {} refused, {} connection errors; \
         latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.clients,
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        totals.refused.load(Ordering::Relaxed),
        totals.errors.load(Ordering::Relaxed),
        ms(q(0.50)),
        ms(q(0.99)),
        ms(latencies.last()),
    );
}
