//! A server started in-process on loopback ports chosen by the kernel, and a
//! line-level SMTP client that shows every reply exactly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use postern::server::{ServeOptions, Server};

use crate::checks::Scratch;
use crate::util::{defaults, fixture, runtime};

/// The tokio runtime the in-process servers run on.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// A running server with its own config, spool and ports.
pub struct TestServer {
    server: Option<Server>,
    _scratch: Scratch,
    pub config: PathBuf,
    pub smtp: SocketAddr,
    pub lmtp: SocketAddr,
    pub http: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub spool: PathBuf,
}

/// The config the server tests share: loopback DNS from
/// `tests/fixtures/serve/zone.txt`, the directory of the check tests,
/// `dns` replacing the `[dns]` body, `server` appended to `[server]`, `rest`
/// appended at the end.
pub fn config_text(dns: Option<&str>, server: &str, rest: &str) -> String {
    let zone = format!("zone_file = \"{}\"\ntimeout_ms = 2000", fixture("serve/zone.txt").display());
    format!(
        "reply_domain = \"reply.example.test\"\n[dns]\n{}\n[directory]\nfile = \"{}\"\n\
         [server]\nsmtp_listen = \"127.0.0.1:0\"\nlmtp_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         hostname = \"mx.test\"\nspool_dir = \"spool\"\n{server}\n{rest}\n",
        dns.map(str::to_string).unwrap_or(zone),
        fixture("auth/workspaces.toml").display(),
    )
}

impl TestServer {
    /// Starts a server; `server` lines go under `[server]`, `rest` after.
    pub fn start(server: &str, rest: &str) -> Self {
        Self::start_with_dns(None, server, rest)
    }

    /// As [`TestServer::start`] with another `[dns]` body.
    pub fn start_with_dns(dns: Option<&str>, server: &str, rest: &str) -> Self {
        let scratch = Scratch::new();
        let config = scratch.file("config.toml", &config_text(dns, server, rest));
        let options = ServeOptions { config: Some(config.clone()), ..ServeOptions::default() };
        let server = rt().block_on(Server::start_with(options, runtime(), defaults())).expect("server starts");
        TestServer {
            smtp: server.smtp,
            lmtp: server.lmtp.expect("lmtp configured"),
            http: server.http,
            admin: server.admin,
            spool: server.spool.clone(),
            server: Some(server),
            _scratch: scratch,
            config,
        }
    }

    /// A client on the SMTP port, greeting read.
    pub fn connect(&self) -> Client {
        Client::connect(self.smtp)
    }

    /// A client on the LMTP port, greeting read.
    pub fn connect_lmtp(&self) -> Client {
        Client::connect(self.lmtp)
    }

    /// The scratch directory (config, spool, deployment).
    pub fn dir(&self) -> &std::path::Path {
        &self._scratch.0
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Files in a workspace's `new/`.
    pub fn delivered(&self, workspace: &str) -> Vec<PathBuf> {
        let dir = self.spool.join(workspace).join("new");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            rt().block_on(server.shutdown());
        }
    }
}

/// One reply: its code and lines (text after the code and separator).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The last line's text, e.g. `5.1.2 Domain not bound…`.
    pub fn text(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }

    /// `CODE TEXT` of the last line, as on the wire.
    pub fn line(&self) -> String {
        format!("{} {}", self.code, self.text())
    }
}

/// A blocking line-level client.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Self {
        let mut c = Self::connect_raw(addr);
        let greeting = c.reply();
        assert_eq!(greeting.code, 220, "{greeting:?}");
        c
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Reads one (possibly multi-line) reply.
    pub fn reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed while waiting for a reply (got {lines:?})");
            let line = line.trim_end_matches(['\r', '\n']);
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().unwrap_or_else(|_| panic!("bad reply line {line:?}"));
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Reply { code, lines };
            }
        }
    }

    /// Sends one command line and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True once the server has closed the connection (EOF).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }

    /// True when the server sends nothing for `wait` (and has not closed).
    pub fn nothing_within(&mut self, wait: Duration) -> bool {
        use std::io::ErrorKind;
        self.writer.set_read_timeout(Some(wait)).unwrap();
        let got = self.reader.fill_buf().map(|b| b.len());
        self.writer.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        matches!(got, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
    }

    /// EHLO, asserting 250.
    pub fn ehlo(&mut self) -> Reply {
        let r = self.cmd("EHLO client.test");
        assert_eq!(r.code, 250, "{r:?}");
        r
    }

    /// Sends a message body after a 354 (dot-stuffed, terminated) and reads
    /// the final reply.
    pub fn data(&mut self, message: &str) -> Reply {
        let r = self.cmd("DATA");
        assert_eq!(r.code, 354, "{r:?}");
        self.send(&dot_stuff(message));
        self.reply()
    }

    /// One whole transaction; every RCPT must be accepted.
    pub fn deliver(&mut self, from: &str, rcpts: &[&str], message: &str) -> Reply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert_eq!(r.code, 250, "MAIL: {r:?}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert_eq!(r.code, 250, "RCPT {rcpt}: {r:?}");
        }
        self.data(message)
    }
}

/// The DATA encoding of a message: CRLF line ends, leading dots doubled,
/// then `.`.
pub fn dot_stuff(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    for line in message.split_inclusive('\n') {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
    }
    if !message.ends_with('\n') {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The id at the end of a `250 … as ID` reply.
pub fn queued_id(reply: &Reply) -> String {
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.text().rsplit(' ').next().unwrap().to_string()
}

/// Reads a whole HTTP/1.1 response (the server closes after it).
pub fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Sends one message with a real Rust SMTP client (`mail-send`), upgrading
/// with STARTTLS (any certificate accepted); panics unless it is accepted.
pub fn send_over_starttls(addr: SocketAddr, message: &str) {
    let bytes = message.as_bytes().to_vec();
    rt().block_on(async move {
        let message = mail_send::smtp::message::Message::new("alice@customer.test", ["help@support.acme.test"], bytes);
        mail_send::SmtpClientBuilder::new(addr.ip().to_string(), addr.port())
            .expect("client")
            .implicit_tls(false)
            .allow_invalid_certs()
            .helo_host("client.test")
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("STARTTLS handshake")
            .send(message)
            .await
            .expect("accepted");
    });
}
