//! `refract append`: events from JSON lines.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use refract::store::{AppendRequest, EventStore, ExpectedVersion, Metadata, NewEvent, StoreError};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use uuid::Uuid;

use super::DbArgs;

const FORMAT: &str = "\
INPUT FORMAT
  One event per line, as a JSON object:

    {\"stream_id\": \"order-1\", \"type\": \"OrderCreated\", \"data\": {\"order_id\": \"…\"}}

  stream_id         required; 1 to 500 characters. Its category is the part before the first '-'.
  type              required; the event type (alias: event_type).
  data              required; a JSON object.
  event_id          optional UUID. Give one to make re-running the file safe: events whose ids
                    are already stored are not appended again. Without it a random id is used.
  metadata          optional object: correlation_id, causation_id, actor_id, occurred_at
                    (RFC 3339, when the fact happened) and any other keys.
  expected_version  optional: a version number, \"no_stream\" or \"any\" (the default). It is
                    checked against the stream's version just before this line's event.

  Blank lines are skipped. Consecutive lines of one stream are appended together.

ERRORS
  By default the whole input is appended in one transaction: a line that does not parse or
  validate, or a version conflict, is reported with its line number and nothing is appended.
  With --continue-on-error each bad line (or stream's run of lines) is reported and skipped,
  and the rest is appended.";

/// Arguments of `refract append`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = FORMAT)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// JSON lines file to read; `-` or nothing reads stdin.
    file: Option<PathBuf>,
    /// Skip (and report) bad lines and conflicting streams instead of appending nothing.
    #[arg(long)]
    continue_on_error: bool,
}

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    stream_id: String,
    #[serde(rename = "type", alias = "event_type")]
    event_type: String,
    data: Value,
    #[serde(default)]
    event_id: Option<Uuid>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "expected_version")]
    expected_version: Option<ExpectedVersion>,
}

/// A run of consecutive lines of one stream, appended together.
struct Group {
    lines: RangeInclusive<usize>,
    request: AppendRequest,
}

/// Runs `refract append`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let input = read_input(args.file.as_ref()).await?;
    let (groups, bad_lines) = parse(&input);
    for (line, error) in &bad_lines {
        eprintln!("line {line}: {error}");
    }
    if !bad_lines.is_empty() && !args.continue_on_error {
        bail!(
            "{} of the input's lines are invalid (first: line {}); nothing was appended \
             (--continue-on-error appends the valid lines)",
            bad_lines.len(),
            bad_lines[0].0
        );
    }

    let client = refract::db::connect(&args.db.database_url).await?;
    let mut store = EventStore::new(client, &args.db.schema).await?;
    let mut tally = Tally::default();
    if args.continue_on_error {
        for group in &groups {
            match store.append_all(std::slice::from_ref(&group.request)).await {
                Ok(outcomes) => tally.add(&group.request, outcomes[0].already_appended),
                Err(err) => {
                    eprintln!("{}: skipped: {err}", describe_lines(&group.lines));
                    tally.skipped_lines += group.lines.clone().count();
                }
            }
        }
    } else {
        let requests: Vec<AppendRequest> = groups.iter().map(|g| g.request.clone()).collect();
        let outcomes = store.append_all(&requests).await.map_err(|err| locate(err, &groups))?;
        for (group, outcome) in groups.iter().zip(outcomes) {
            tally.add(&group.request, outcome.already_appended);
        }
    }
    tally.skipped_lines += bad_lines.len();
    println!("{tally}");
    Ok(())
}

async fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    let mut input = Vec::new();
    match file.filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            input = tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?;
        }
        None => {
            tokio::io::stdin().read_to_end(&mut input).await.context("cannot read stdin")?;
        }
    }
    Ok(input)
}

/// The groups to append, and the bad lines (1-based number, reason).
fn parse(input: &[u8]) -> (Vec<Group>, Vec<(usize, String)>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut bad = Vec::new();
    let mut first_use: HashMap<Uuid, usize> = HashMap::new();
    for (index, raw) in input.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (line, event) = match parse_line(raw) {
            Ok(parsed) => parsed,
            Err(reason) => {
                bad.push((number, reason));
                continue;
            }
        };
        if let Some(earlier) = first_use.insert(event.event_id, number) {
            first_use.insert(event.event_id, earlier);
            bad.push((number, format!("event_id {} is already used on line {earlier}", event.event_id)));
            continue;
        }
        match groups.last_mut() {
            Some(group) if group.request.stream_id == line.stream_id && line.expected_version.is_none() => {
                group.lines = *group.lines.start()..=number;
                group.request.events.push(event);
            }
            _ => groups.push(Group {
                lines: number..=number,
                request: AppendRequest {
                    stream_id: line.stream_id,
                    expected: line.expected_version.unwrap_or(ExpectedVersion::Any),
                    events: vec![event],
                },
            }),
        }
    }
    (groups, bad)
}

fn parse_line(raw: &[u8]) -> Result<(Line, NewEvent), String> {
    let text = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8".to_owned())?;
    let mut line: Line = serde_json::from_str(text).map_err(|err| {
        // serde_json ends with "at line 1 column N": on a one-line text only the column says anything.
        let message = err.to_string();
        let reason = message.rsplit_once(" at line ").map_or(message.as_str(), |(reason, _)| reason);
        format!("not a valid event (column {}): {reason}", err.column())
    })?;
    let data = std::mem::take(&mut line.data);
    let mut event =
        NewEvent::new(line.event_type.clone(), data).with_metadata(line.metadata.take().unwrap_or_default());
    if let Some(id) = line.event_id {
        event = event.with_id(id);
    }
    // The store's own checks, on this line alone, so that the error names the line.
    let single =
        AppendRequest { stream_id: line.stream_id.clone(), expected: ExpectedVersion::Any, events: vec![event] };
    refract::store::validate_requests(std::slice::from_ref(&single)).map_err(|err| err.to_string())?;
    let event = single.events.into_iter().next().expect("one event was put in");
    Ok((line, event))
}

fn expected_version<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<ExpectedVersion>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(de)? {
        Value::Null => Ok(None),
        Value::String(s) if s == "any" => Ok(Some(ExpectedVersion::Any)),
        Value::String(s) if s == "no_stream" || s == "no-stream" => Ok(Some(ExpectedVersion::NoStream)),
        Value::Number(n) if n.as_i64().is_some_and(|v| v >= 0) => Ok(n.as_i64().map(ExpectedVersion::Exact)),
        other => Err(D::Error::custom(format!(
            "expected_version must be a version number (0 or more), \"no_stream\" or \"any\", not {other}"
        ))),
    }
}

fn describe_lines(lines: &RangeInclusive<usize>) -> String {
    if lines.start() == lines.end() {
        format!("line {}", lines.start())
    } else {
        format!("lines {}-{}", lines.start(), lines.end())
    }
}

/// An error of the one-transaction append, with the lines of the stream it concerns.
fn locate(err: StoreError, groups: &[Group]) -> anyhow::Error {
    let stream = match &err {
        StoreError::Conflict { stream_id, .. } | StoreError::EventIdTaken { stream_id, .. } => Some(stream_id.as_str()),
        _ => None,
    };
    let lines: Vec<String> = groups
        .iter()
        .filter(|g| Some(g.request.stream_id.as_str()) == stream)
        .map(|g| describe_lines(&g.lines))
        .collect();
    let err = anyhow::Error::new(err);
    if lines.is_empty() {
        err.context("nothing was appended")
    } else {
        err.context(format!("nothing was appended; the failing stream is on {}", lines.join(", ")))
    }
}

#[derive(Default)]
struct Tally {
    events: usize,
    already: usize,
    streams: std::collections::HashSet<String>,
    skipped_lines: usize,
}

impl Tally {
    fn add(&mut self, request: &AppendRequest, already_appended: bool) {
        if already_appended {
            self.already += request.events.len();
        } else {
            self.events += request.events.len();
            self.streams.insert(request.stream_id.clone());
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "appended {} events to {} streams", self.events, self.streams.len())?;
        if self.already > 0 {
            write!(f, "; {} events were already stored", self.already)?;
        }
        if self.skipped_lines > 0 {
            write!(f, "; skipped {} lines", self.skipped_lines)?;
        }
        Ok(())
    }
}
