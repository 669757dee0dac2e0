//! What the HTTP tests share: sample orders, the engine's bound address, plain HTTP GETs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use refract::generate::orders::{OrderConfig, OrderGenerator};
use refract_test_harness::TestDb;
use refract_test_harness::engine::EngineProcess;

/// Appends `orders` sample orders of the order domain to `db`.
pub async fn generate(db: &TestDb, orders: u64, seed: u64) -> anyhow::Result<()> {
    let mut client = db.connect().await?;
    let config = OrderConfig { orders, seed, ..OrderConfig::default() };
    refract::generate::load(&mut client, "public", OrderGenerator::new(config)).await?;
    Ok(())
}

/// The address `engine` serves HTTP on, from its "serving HTTP on http://ADDR/" log line.
pub async fn http_address(engine: &EngineProcess) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = engine.log();
        if let Some(rest) = log.lines().find_map(|l| l.split_once("serving HTTP on http://").map(|(_, r)| r)) {
            let address = rest.split('/').next().context("an address before `/`")?;
            return address.parse().with_context(|| format!("bad address {address:?}"));
        }
        ensure!(Instant::now() < deadline, "the engine logged no HTTP address; log:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A response: status code, content type, body.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `content-type` header, lowercased.
    pub content_type: String,
    /// The body.
    pub body: String,
}

/// `GET path` over HTTP/1.0, so that the server closes the connection after a body that is
/// never chunked: a complete client in a few lines.
pub fn get(address: SocketAddr, path: &str) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).context("no status line")?.parse()?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map_or(String::new(), |(_, value)| value.trim().to_ascii_lowercase());
    Ok(Response { status, content_type, body: body.to_owned() })
}
