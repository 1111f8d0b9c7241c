//! A Cluster's primaries, found and reached without the cluster client's routing.
//!
//! redis-rs fans multi-node commands (`PING` to all masters, multi-slot `MGET`/`UNLINK`/`MSET`)
//! out from its current slot map. Right after a failover a fan-out meets `MOVED` replies, and the
//! slot refresh they start never completes (the client's recovery waits on requests it no longer
//! polls): from then on every call of that client times out. Single-slot commands refresh the map
//! and follow `MOVED` as they should. So the store never fans out through redis-rs:
//! - multi-key commands are split by slot and sent as single-slot commands;
//! - what must reach every primary (`SCAN` for `scan` and `clear`, `PING`, `INFO`) is sent on
//!   connections of our own, to the primaries that `CLUSTER SHARDS` lists, asked afresh each time.

use cache_core::{Error, ErrorKind, Result};
use redis::{Cmd, FromRedisValue, Value};
use std::collections::HashMap;
use tokio::sync::Mutex;

use crate::config::{NodeAddr, RedisConfig, RedisMode};
use crate::conn::{Managed, client_for, open_manager};
use crate::error::map_redis_error;

/// Slots of a Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// One primary and the slot ranges (inclusive) it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) primary: NodeAddr,
    pub(crate) slots: Vec<(u16, u16)>,
}

/// Connections to the nodes of one Cluster, by address, opened when first needed.
pub(crate) struct Topology {
    config: RedisConfig,
    conns: Mutex<HashMap<NodeAddr, Managed>>,
    /// Every node ever listed, the last to answer first: where to ask for the shards.
    known: std::sync::Mutex<Vec<NodeAddr>>,
}

impl Topology {
    pub(crate) fn new(config: &RedisConfig) -> Self {
        let seeds = match &config.mode {
            RedisMode::Cluster(nodes) => nodes.clone(),
            _ => Vec::new(),
        };
        Topology {
            config: config.clone(),
            conns: Mutex::new(HashMap::new()),
            known: std::sync::Mutex::new(seeds),
        }
    }

    /// Sends `cmd` to `node`, within the command timeout.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        node: &NodeAddr,
        cmd: &Cmd,
        op: &str,
    ) -> Result<T> {
        let timeout = self.config.command_timeout;
        let work = async {
            let mut conn = self.conn(node).await?;
            let value = conn
                .send(cmd)
                .await
                .map_err(|e| map_redis_error(e, op, None))?;
            T::from_redis_value(value).map_err(|e| map_redis_error(e.into(), op, None))
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{op}: {node} did not answer within {timeout:?}"),
            )),
        }
    }

    async fn conn(&self, node: &NodeAddr) -> Result<Managed> {
        if let Some(conn) = self.conns.lock().await.get(node) {
            return Ok(conn.clone());
        }
        let client = client_for(&self.config, node, 0)?;
        let conn = open_manager(client, &self.config, &format!("connect to {node}")).await?;
        Ok(self
            .conns
            .lock()
            .await
            .entry(node.clone())
            .or_insert(conn)
            .clone())
    }

    /// The primaries and their slots, as the first node that answers sees them, with every slot
    /// served. A view with unserved slots (a failover under way) is a retryable error.
    pub(crate) async fn shards(&self) -> Result<Vec<Shard>> {
        let candidates = self.known.lock().expect("not poisoned").clone();
        let mut last = None;
        for node in &candidates {
            let reply: Value = match self
                .query(
                    node,
                    &redis::cmd("CLUSTER").arg("SHARDS").clone(),
                    "list the cluster's shards",
                )
                .await
            {
                Ok(reply) => reply,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let shards = parse_shards(&reply, self.config.tls)?;
            let gaps = unserved(&shards);
            if !gaps.is_empty() {
                last = Some(
                    Error::new(
                        ErrorKind::Connection,
                        format!(
                            "{node} sees slots without a primary: {}",
                            show_ranges(&gaps)
                        ),
                    )
                    .with_retryable(true),
                );
                continue;
            }
            self.remember(node, &shards);
            return Ok(shards);
        }
        Err(last.unwrap_or_else(|| {
            Error::new(ErrorKind::Config, "no Cluster nodes to ask for the shards")
        }))
    }

    /// Keeps the primaries listed, and asks `answered` first next time: a dead seed then costs
    /// its timeout once, not on every call.
    fn remember(&self, answered: &NodeAddr, shards: &[Shard]) {
        let mut known = self.known.lock().expect("not poisoned");
        if let Some(at) = known.iter().position(|n| n == answered) {
            let node = known.remove(at);
            known.insert(0, node);
        }
        for shard in shards {
            if !known.contains(&shard.primary) {
                known.push(shard.primary.clone());
            }
        }
    }
}

/// Slot ranges that no shard serves.
pub(crate) fn unserved(shards: &[Shard]) -> Vec<(u16, u16)> {
    let served: Vec<(u16, u16)> = shards.iter().flat_map(|s| s.slots.clone()).collect();
    ranges_missing(&served)
}

/// The slots of `0..SLOTS` that `ranges` leave out, as ranges.
pub(crate) fn ranges_missing(ranges: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut gaps = Vec::new();
    let mut next: u32 = 0;
    for (a, b) in sorted {
        if u32::from(a) > next {
            gaps.push((next as u16, a - 1));
        }
        next = next.max(u32::from(b) + 1);
    }
    if next < u32::from(SLOTS) {
        gaps.push((next as u16, SLOTS - 1));
    }
    gaps
}

pub(crate) fn show_ranges(ranges: &[(u16, u16)]) -> String {
    let shown: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    shown.join(",")
}

/// `CLUSTER SHARDS`: a list of shards, each a map (or, in RESP2, a flat key-value list) with
/// `slots` (a flat list of range bounds) and `nodes` (maps with `ip`, `port`, `tls-port`, `role`
/// and `health`).
fn parse_shards(reply: &Value, tls: bool) -> Result<Vec<Shard>> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Backend,
            format!("unexpected CLUSTER SHARDS reply: {why}"),
        )
    };
    let Value::Array(shards) = reply else {
        return Err(bad("not a list"));
    };
    let mut out = Vec::new();
    for shard in shards {
        let fields = pairs(shard).ok_or_else(|| bad("a shard is not a map"))?;
        let mut slots = Vec::new();
        let mut primary = None;
        for (name, value) in fields {
            match name.as_str() {
                "slots" => {
                    let Value::Array(bounds) = value else {
                        return Err(bad("slots is not a list"));
                    };
                    let bounds: Vec<u16> = bounds
                        .iter()
                        .map(|b| {
                            u16::from_redis_value(b.clone())
                                .map_err(|_| bad("a slot is not a number"))
                        })
                        .collect::<Result<_>>()?;
                    for pair in bounds.chunks(2) {
                        if let [a, b] = pair {
                            slots.push((*a, *b));
                        }
                    }
                }
                "nodes" => {
                    let Value::Array(nodes) = value else {
                        return Err(bad("nodes is not a list"));
                    };
                    for node in nodes {
                        let node: HashMap<String, Value> = pairs(&node)
                            .ok_or_else(|| bad("a node is not a map"))?
                            .into_iter()
                            .collect();
                        let text = |k: &str| {
                            node.get(k)
                                .and_then(|v| String::from_redis_value(v.clone()).ok())
                        };
                        let number = |k: &str| {
                            node.get(k)
                                .and_then(|v| u16::from_redis_value(v.clone()).ok())
                        };
                        if text("role").as_deref() != Some("master")
                            || text("health").as_deref() == Some("fail")
                        {
                            continue;
                        }
                        let port = if tls {
                            number("tls-port").or(number("port"))
                        } else {
                            number("port")
                        };
                        if let (Some(ip), Some(port)) = (text("ip"), port) {
                            primary = Some(NodeAddr::new(ip, port));
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(primary), false) = (primary, slots.is_empty()) {
            out.push(Shard { primary, slots });
        }
    }
    Ok(out)
}

/// A map's entries, from a RESP3 map or a RESP2 flat list.
fn pairs(value: &Value) -> Option<Vec<(String, Value)>> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| Some((String::from_redis_value(k.clone()).ok()?, v.clone())))
            .collect(),
        Value::Array(flat) if flat.len() % 2 == 0 => flat
            .chunks(2)
            .map(|kv| Some((String::from_redis_value(kv[0].clone()).ok()?, kv[1].clone())))
            .collect(),
        _ => None,
    }
}

/// How many rounds a `clear` (or visits per primary a `scan`) may spend on slots that moved
/// while it ran, before it gives up with a retryable error.
pub(crate) const MAX_ROUNDS: usize = 8;

/// A set of slots.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SlotSet(Box<[u64; SLOTS as usize / 64]>);

impl SlotSet {
    pub(crate) fn empty() -> Self {
        SlotSet(Box::new([0; SLOTS as usize / 64]))
    }

    pub(crate) fn of(ranges: &[(u16, u16)]) -> Self {
        let mut set = SlotSet::empty();
        for &(a, b) in ranges {
            for slot in a..=b.min(SLOTS - 1) {
                set.0[usize::from(slot) / 64] |= 1 << (slot % 64);
            }
        }
        set
    }

    pub(crate) fn union(&mut self, other: &SlotSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    pub(crate) fn intersection(&self, other: &SlotSet) -> SlotSet {
        let mut out = self.clone();
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a &= b;
        }
        out
    }

    /// Whether every slot of `other` is in this set.
    pub(crate) fn covers(&self, other: &SlotSet) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| b & !a == 0)
    }

    pub(crate) fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut start = None;
        for slot in 0..=SLOTS {
            let on = slot < SLOTS && self.0[usize::from(slot) / 64] >> (slot % 64) & 1 == 1;
            match (on, start) {
                (true, None) => start = Some(slot),
                (false, Some(a)) => {
                    out.push((a, slot - 1));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    /// `a-b,c-d`, as a scan cursor carries it.
    pub(crate) fn encode(&self) -> String {
        show_ranges(&self.ranges())
    }

    pub(crate) fn decode(text: &str) -> Option<SlotSet> {
        if text.is_empty() {
            return Some(SlotSet::empty());
        }
        let ranges = text
            .split(',')
            .map(|r| {
                let (a, b) = r.split_once('-')?;
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                (a <= b && b < SLOTS).then_some((a, b))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SlotSet::of(&ranges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ranges_are_the_gaps_between_and_around() {
        assert_eq!(ranges_missing(&[(0, 16383)]), vec![]);
        assert_eq!(
            ranges_missing(&[(0, 5460), (10923, 16383)]),
            vec![(5461, 10922)]
        );
        assert_eq!(ranges_missing(&[(5, 10)]), vec![(0, 4), (11, 16383)]);
        assert_eq!(ranges_missing(&[(0, 10), (5, 20), (21, 16383)]), vec![]);
        assert_eq!(ranges_missing(&[]), vec![(0, 16383)]);
    }

    #[test]
    fn slot_sets_round_trip_and_combine() {
        let a = SlotSet::of(&[(0, 100), (200, 300)]);
        assert_eq!(
            SlotSet::decode(&a.encode()).unwrap().ranges(),
            vec![(0, 100), (200, 300)]
        );
        let b = SlotSet::of(&[(50, 250)]);
        assert_eq!(a.intersection(&b).ranges(), vec![(50, 100), (200, 250)]);
        let mut c = a.clone();
        c.union(&b);
        assert_eq!(c.ranges(), vec![(0, 300)]);
        assert!(c.covers(&a) && !a.covers(&c));
        assert!(SlotSet::decode("5-3").is_none() && SlotSet::decode("0-16384").is_none());
        assert_eq!(SlotSet::decode("").unwrap().ranges(), vec![]);
    }
}
