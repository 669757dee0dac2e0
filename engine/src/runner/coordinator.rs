//! The coordinator: one reader of the log feeding every projection.
//!
//! Projections whose read cursors are equal form a group, and a group is served by one read
//! of the log (filtered in SQL by the union of its members' subscriptions). Projections at the
//! head of the log therefore share one scan; a projection that is behind (new, rebuilding,
//! restarted) forms a group of its own, catches up, and joins the shared group the moment its
//! cursor meets the others', since batches that reach the head all end at the same cursor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::cursor::Cursor;
use super::reader::{Batch, LogReader};
use super::subscription::Subscription;

/// Messages from workers to the coordinator.
#[derive(Debug)]
pub enum Control {
    /// A worker starts (or restarts) at `cursor`, its committed checkpoint.
    Join {
        /// The projection.
        name: String,
        /// What it receives.
        subscription: Subscription,
        /// Most events per batch.
        batch_size: usize,
        /// Where it stands.
        cursor: Cursor,
        /// Where to send its batches.
        batches: mpsc::Sender<Arc<Batch>>,
    },
    /// A worker stops; batches for it stop.
    Leave {
        /// The projection.
        name: String,
    },
}

struct Member {
    subscription: Subscription,
    batch_size: usize,
    /// Where the next read for this member starts (ahead of its checkpoint by the batches
    /// queued for it).
    cursor: Cursor,
    batches: mpsc::Sender<Arc<Batch>>,
    /// Whether the last batch sent to it reached the head.
    at_head: bool,
}

/// How the coordinator waits for new events.
#[derive(Debug, Clone)]
pub struct Wakeups {
    /// Signalled on NOTIFY from the event store's trigger.
    pub notified: Arc<Notify>,
    /// Signalled when a worker makes room in its queue.
    pub capacity: Arc<Notify>,
    /// Longest wait before reading again without a notification.
    pub poll_interval: Duration,
}

/// Reads the log and hands batches to projections until shutdown.
pub struct Coordinator {
    reader: LogReader,
    control: mpsc::UnboundedReceiver<Control>,
    members: BTreeMap<String, Member>,
    wakeups: Wakeups,
    shutdown: watch::Receiver<bool>,
}

impl Coordinator {
    /// A coordinator reading through `reader`.
    pub fn new(
        reader: LogReader,
        control: mpsc::UnboundedReceiver<Control>,
        wakeups: Wakeups,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Coordinator { reader, control, members: BTreeMap::new(), wakeups, shutdown }
    }

    /// Replaces the reader (after its connection was lost); members keep their cursors.
    pub fn reconnect(&mut self, reader: LogReader) {
        let reads = self.reader.reads;
        self.reader = reader;
        self.reader.reads = reads;
    }

    /// How many times the log has been read so far.
    pub fn reads(&self) -> u64 {
        self.reader.reads
    }

    /// Serves the members until shutdown, or until reading the log fails (the caller
    /// reconnects and calls again; members keep their cursors).
    pub async fn run(&mut self) -> Result<(), tokio_postgres::Error> {
        loop {
            while let Ok(message) = self.control.try_recv() {
                self.handle(message);
            }
            if *self.shutdown.borrow() {
                return Ok(());
            }
            let progressed = self.round().await?;
            if !progressed {
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    _ = self.wakeups.notified.notified() => {}
                    _ = self.wakeups.capacity.notified() => {}
                    _ = tokio::time::sleep(self.wakeups.poll_interval) => {}
                    message = self.control.recv() => if let Some(message) = message { self.handle(message) },
                    _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                }
            }
        }
    }

    fn handle(&mut self, message: Control) {
        match message {
            Control::Join { name, subscription, batch_size, cursor, batches } => {
                self.members.insert(name, Member { subscription, batch_size, cursor, batches, at_head: false });
            }
            Control::Leave { name } => {
                self.members.remove(&name);
            }
        }
    }

    /// One read for every group whose members all have room; whether any batch was sent.
    async fn round(&mut self) -> Result<bool, tokio_postgres::Error> {
        if self.members.is_empty() {
            return Ok(false);
        }
        let (horizon, head) = self.reader.head().await?;
        // Only members with room in their queue are served: a slow projection must not hold
        // back the others at its cursor (it falls behind and reads on its own until it is back).
        let mut groups: BTreeMap<Cursor, Vec<String>> = BTreeMap::new();
        for (name, member) in &self.members {
            if member.batches.capacity() > 0 {
                groups.entry(member.cursor).or_default().push(name.clone());
            }
        }
        let mut progressed = false;
        for (cursor, names) in groups {
            if head.is_none_or(|head| head <= cursor) {
                // A member that joined at the head (an empty log, a build that reached the head
                // before a restart) is told so with an empty batch: builds finish on it.
                for name in names {
                    if !self.members[&name].at_head {
                        let at = Batch { from: cursor, to: cursor, events: Vec::new(), at_head: true };
                        progressed |= self.send(&name, Arc::new(at));
                    }
                }
                continue;
            }
            let members: Vec<&Member> = names.iter().map(|n| &self.members[n]).collect();
            let filter = Subscription::union(members.iter().map(|m| &m.subscription));
            let limit = members.iter().map(|m| m.batch_size).min().unwrap_or(1).max(1);
            let batch = self.reader.read(cursor, horizon, head, &filter, limit).await?;
            if batch.to == cursor {
                continue;
            }
            let batch = Arc::new(batch);
            for name in names {
                self.send(&name, batch.clone());
            }
            progressed = true;
        }
        Ok(progressed)
    }

    /// Sends `batch` to member `name`; whether it was sent.
    fn send(&mut self, name: &str, batch: Arc<Batch>) -> bool {
        let member = self.members.get_mut(name).expect("grouped from the members");
        let (to, at_head) = (batch.to, batch.at_head);
        if member.batches.try_send(batch).is_ok() {
            member.cursor = to;
            member.at_head = at_head;
            true
        } else {
            // The worker went away; it rejoins with its checkpoint when it restarts.
            self.members.remove(name);
            false
        }
    }
}
