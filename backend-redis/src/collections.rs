//! [`CollectionStore`] on Redis: one command per operation (`HSET`, `LPUSH`, `SADD`, `ZADD`, …),
//! under the store's key prefix. Cluster routes each by its key's slot, like every single-key command.

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    CollectionArgs, CollectionStore, Error, ErrorKind, MAX_COLLECTION_PAGE, Order, Page, Result,
    ScanCursor, ScoreBound, index_range,
};
use redis::Value;

use crate::RedisStore;
use crate::error::unexpected;

impl RedisStore {
    fn args(&self) -> CollectionArgs<'_> {
        CollectionArgs::new(self.limits_ref())
    }

    /// `HSCAN`/`SSCAN` cursor: the server's, as a decimal string.
    fn cursor(op: &str, cursor: &ScanCursor) -> Result<u64> {
        if cursor.is_start() {
            return Ok(0);
        }
        cursor.as_str().parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{op} cursor {:?} was not made by this store",
                    cursor.as_str()
                ),
            )
        })
    }

    /// `HSCAN key cursor COUNT n` / `SSCAN …`: the next cursor and the flat reply.
    async fn scan_collection(
        &self,
        name: &str,
        op: &str,
        key: &str,
        cursor: &ScanCursor,
        count: usize,
    ) -> Result<(Option<ScanCursor>, Vec<Vec<u8>>)> {
        self.limits_ref().check_key(key)?;
        let start = Self::cursor(op, cursor)?;
        let mut cmd = self.key_command(name, key, 3, 32);
        cmd.arg(start)
            .arg("COUNT")
            .arg(count.clamp(1, MAX_COLLECTION_PAGE));
        let (next, items): (u64, Vec<Vec<u8>>) = self.query(&cmd, op, Some(key)).await?;
        let next = (next != 0).then(|| ScanCursor::from_backend(next.to_string()));
        Ok((next, items))
    }

    /// `ZRANGE key start stop [BYSCORE] [REV] [LIMIT offset count] WITHSCORES`.
    async fn zrange(
        &self,
        key: &str,
        bounds: (String, String),
        by_score: Option<(usize, usize)>,
        order: Order,
    ) -> Result<Vec<(Bytes, f64)>> {
        let mut cmd = self.key_command("ZRANGE", key, 8, 64);
        cmd.arg(bounds.0).arg(bounds.1);
        if by_score.is_some() {
            cmd.arg("BYSCORE");
        }
        if order == Order::Descending {
            cmd.arg("REV");
        }
        if let Some((offset, count)) = by_score {
            cmd.arg("LIMIT").arg(offset).arg(count);
        }
        cmd.arg("WITHSCORES");
        let reply: Value = self.query(&cmd, "zrange", Some(key)).await?;
        scored_members(reply)
    }
}

/// A `ZRANGE … WITHSCORES` reply: flat `[member, score, …]` (RESP2) or pairs (RESP3).
fn scored_members(reply: Value) -> Result<Vec<(Bytes, f64)>> {
    let bad = || unexpected("zrange", "not a list of members and scores");
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    let mut out = Vec::new();
    let mut pending: Option<Bytes> = None;
    for item in items {
        match item {
            Value::Array(pair) => {
                let [member, score] = <[Value; 2]>::try_from(pair).map_err(|_| bad())?;
                out.push((
                    bytes(member).ok_or_else(bad)?,
                    score_of(score).ok_or_else(bad)?,
                ));
            }
            other => match pending.take() {
                None => pending = Some(bytes(other).ok_or_else(bad)?),
                Some(member) => out.push((member, score_of(other).ok_or_else(bad)?)),
            },
        }
    }
    Ok(out)
}

fn bytes(value: Value) -> Option<Bytes> {
    match value {
        Value::BulkString(b) => Some(b.into()),
        Value::SimpleString(s) => Some(s.into_bytes().into()),
        _ => None,
    }
}

fn score_of(value: Value) -> Option<f64> {
    match value {
        Value::Double(d) => Some(d),
        Value::Int(i) => Some(i as f64),
        Value::BulkString(b) => parse_score(&b),
        Value::SimpleString(s) => parse_score(s.as_bytes()),
        _ => None,
    }
}

/// A score as Redis writes it (`inf`, `-inf`, or a decimal).
fn parse_score(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A score bound as `ZRANGE … BYSCORE` reads it.
fn score_arg(bound: ScoreBound, unbounded: &str) -> Result<String> {
    Ok(match bound {
        ScoreBound::Inclusive(s) if !s.is_nan() => score_text(s),
        ScoreBound::Exclusive(s) if !s.is_nan() => format!("({}", score_text(s)),
        ScoreBound::Unbounded => unbounded.to_owned(),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a score bound must not be NaN",
            ));
        }
    })
}

fn score_text(score: f64) -> String {
    if score == f64::INFINITY {
        "+inf".into()
    } else if score == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        // Rust prints the shortest decimal that reads back exactly, as Redis needs.
        score.to_string()
    }
}

#[async_trait]
impl CollectionStore for RedisStore {
    async fn hset(&self, key: &str, fields: &[(&str, Bytes)]) -> Result<u64> {
        let args = self.args();
        self.limits_ref().check_key(key)?;
        args.not_empty("fields", fields)?;
        for (field, value) in fields {
            args.field(field)?;
            args.value(key, value)?;
        }
        let bytes = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        let mut cmd = self.key_command("HSET", key, 2 * fields.len(), bytes);
        for (field, value) in fields {
            cmd.arg(*field).arg(value.as_ref());
        }
        self.query(&cmd, "hset", Some(key)).await
    }

    async fn hget(&self, key: &str, field: &str) -> Result<Option<Bytes>> {
        self.limits_ref().check_key(key)?;
        self.args().field(field)?;
        let mut cmd = self.key_command("HGET", key, 1, field.len());
        cmd.arg(field);
        self.query(&cmd, "hget", Some(key)).await
    }

    async fn hmget(&self, key: &str, fields: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.limits_ref().check_key(key)?;
        for field in fields {
            self.args().field(field)?;
        }
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = fields.iter().map(|f| f.len()).sum();
        let mut cmd = self.key_command("HMGET", key, fields.len(), bytes);
        for field in fields {
            cmd.arg(*field);
        }
        self.query(&cmd, "hmget", Some(key)).await
    }

    async fn hdel(&self, key: &str, fields: &[&str]) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        self.args().not_empty("fields", fields)?;
        for field in fields {
            self.args().field(field)?;
        }
        let bytes = fields.iter().map(|f| f.len()).sum();
        let mut cmd = self.key_command("HDEL", key, fields.len(), bytes);
        for field in fields {
            cmd.arg(*field);
        }
        self.query(&cmd, "hdel", Some(key)).await
    }

    async fn hincr_by(&self, key: &str, field: &str, delta: i64) -> Result<i64> {
        self.limits_ref().check_key(key)?;
        self.args().field(field)?;
        let mut cmd = self.key_command("HINCRBY", key, 2, field.len() + 20);
        cmd.arg(field).arg(delta);
        self.query(&cmd, "hincr_by", Some(key)).await
    }

    async fn hexists(&self, key: &str, field: &str) -> Result<bool> {
        self.limits_ref().check_key(key)?;
        self.args().field(field)?;
        let mut cmd = self.key_command("HEXISTS", key, 1, field.len());
        cmd.arg(field);
        Ok(self.query::<u64>(&cmd, "hexists", Some(key)).await? == 1)
    }

    async fn hlen(&self, key: &str) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("HLEN", key, 0, 0);
        self.query(&cmd, "hlen", Some(key)).await
    }

    async fn hscan(
        &self,
        key: &str,
        cursor: ScanCursor,
        count: usize,
    ) -> Result<Page<(String, Bytes)>> {
        let (next, flat) = self
            .scan_collection("HSCAN", "hscan", key, &cursor, count)
            .await?;
        let mut items = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
            let field = String::from_utf8(field)
                .map_err(|_| unexpected("hscan", "a hash field that is not UTF-8"))?;
            items.push((field, Bytes::from(value)));
        }
        Ok(Page { items, next })
    }

    async fn lpush(&self, key: &str, values: &[Bytes]) -> Result<u64> {
        self.push("LPUSH", "lpush", key, values).await
    }

    async fn rpush(&self, key: &str, values: &[Bytes]) -> Result<u64> {
        self.push("RPUSH", "rpush", key, values).await
    }

    async fn lpop(&self, key: &str, count: usize) -> Result<Vec<Bytes>> {
        self.pop("LPOP", "lpop", key, count).await
    }

    async fn rpop(&self, key: &str, count: usize) -> Result<Vec<Bytes>> {
        self.pop("RPOP", "rpop", key, count).await
    }

    async fn lrange(&self, key: &str, start: i64, count: usize) -> Result<Vec<Bytes>> {
        self.limits_ref().check_key(key)?;
        self.args().count(count)?;
        let (start, stop) = index_range(start, count);
        let mut cmd = self.key_command("LRANGE", key, 2, 40);
        cmd.arg(start).arg(stop);
        self.query(&cmd, "lrange", Some(key)).await
    }

    async fn llen(&self, key: &str) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("LLEN", key, 0, 0);
        self.query(&cmd, "llen", Some(key)).await
    }

    async fn ltrim(&self, key: &str, start: i64, stop: i64) -> Result<()> {
        self.limits_ref().check_key(key)?;
        let mut cmd = self.key_command("LTRIM", key, 2, 40);
        cmd.arg(start).arg(stop);
        self.query(&cmd, "ltrim", Some(key)).await
    }

    async fn sadd(&self, key: &str, members: &[Bytes]) -> Result<u64> {
        self.members_command("SADD", "sadd", key, members).await
    }

    async fn srem(&self, key: &str, members: &[Bytes]) -> Result<u64> {
        self.members_command("SREM", "srem", key, members).await
    }

    async fn sismember(&self, key: &str, member: &[u8]) -> Result<bool> {
        self.limits_ref().check_key(key)?;
        self.args().member(member)?;
        let mut cmd = self.key_command("SISMEMBER", key, 1, member.len());
        cmd.arg(member);
        Ok(self.query::<u64>(&cmd, "sismember", Some(key)).await? == 1)
    }

    async fn scard(&self, key: &str) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("SCARD", key, 0, 0);
        self.query(&cmd, "scard", Some(key)).await
    }

    async fn sscan(&self, key: &str, cursor: ScanCursor, count: usize) -> Result<Page<Bytes>> {
        let (next, members) = self
            .scan_collection("SSCAN", "sscan", key, &cursor, count)
            .await?;
        Ok(Page {
            items: members.into_iter().map(Bytes::from).collect(),
            next,
        })
    }

    async fn zadd(&self, key: &str, members: &[(f64, Bytes)]) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        let args = self.args();
        args.not_empty("members", members)?;
        for (score, member) in members {
            args.score(*score)?;
            args.member(member)?;
        }
        let bytes = members.iter().map(|(_, m)| m.len() + 24).sum();
        let mut cmd = self.key_command("ZADD", key, 2 * members.len(), bytes);
        for (score, member) in members {
            // redis-rs writes an f64 as the shortest decimal that reads back exactly (ryu),
            // `inf` and `-inf` included, without a String.
            cmd.arg(*score).arg(member.as_ref());
        }
        self.query(&cmd, "zadd", Some(key)).await
    }

    async fn zincr_by(&self, key: &str, member: &[u8], delta: f64) -> Result<f64> {
        self.limits_ref().check_key(key)?;
        self.args().member(member)?;
        self.args().score(delta)?;
        let mut cmd = self.key_command("ZINCRBY", key, 2, member.len() + 24);
        cmd.arg(delta).arg(member);
        let reply: Value = self.query(&cmd, "zincr_by", Some(key)).await?;
        score_of(reply).ok_or_else(|| unexpected("zincr_by", "not a score"))
    }

    async fn zrem(&self, key: &str, members: &[Bytes]) -> Result<u64> {
        self.members_command("ZREM", "zrem", key, members).await
    }

    async fn zscore(&self, key: &str, member: &[u8]) -> Result<Option<f64>> {
        self.limits_ref().check_key(key)?;
        self.args().member(member)?;
        let mut cmd = self.key_command("ZSCORE", key, 1, member.len());
        cmd.arg(member);
        match self.query::<Value>(&cmd, "zscore", Some(key)).await? {
            Value::Nil => Ok(None),
            reply => score_of(reply)
                .map(Some)
                .ok_or_else(|| unexpected("zscore", "not a score")),
        }
    }

    async fn zrank(&self, key: &str, member: &[u8], order: Order) -> Result<Option<u64>> {
        self.limits_ref().check_key(key)?;
        self.args().member(member)?;
        let name = match order {
            Order::Ascending => "ZRANK",
            Order::Descending => "ZREVRANK",
        };
        let mut cmd = self.key_command(name, key, 1, member.len());
        cmd.arg(member);
        self.query(&cmd, "zrank", Some(key)).await
    }

    async fn zrange_by_rank(
        &self,
        key: &str,
        start: i64,
        count: usize,
        order: Order,
    ) -> Result<Vec<(Bytes, f64)>> {
        self.limits_ref().check_key(key)?;
        self.args().count(count)?;
        let (start, stop) = index_range(start, count);
        self.zrange(key, (start.to_string(), stop.to_string()), None, order)
            .await
    }

    async fn zrange_by_score(
        &self,
        key: &str,
        min: ScoreBound,
        max: ScoreBound,
        offset: usize,
        count: usize,
        order: Order,
    ) -> Result<Vec<(Bytes, f64)>> {
        self.limits_ref().check_key(key)?;
        self.args().count(count)?;
        let (min, max) = (score_arg(min, "-inf")?, score_arg(max, "+inf")?);
        // With REV, ZRANGE takes the high end first.
        let bounds = match order {
            Order::Ascending => (min, max),
            Order::Descending => (max, min),
        };
        self.zrange(key, bounds, Some((offset, count)), order).await
    }

    async fn zcard(&self, key: &str) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("ZCARD", key, 0, 0);
        self.query(&cmd, "zcard", Some(key)).await
    }
}

impl RedisStore {
    async fn push(&self, name: &str, op: &str, key: &str, values: &[Bytes]) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        let args = self.args();
        args.not_empty("values", values)?;
        for value in values {
            args.value(key, value)?;
        }
        let bytes = values.iter().map(Bytes::len).sum();
        let mut cmd = self.key_command(name, key, values.len(), bytes);
        for value in values {
            cmd.arg(value.as_ref());
        }
        self.query(&cmd, op, Some(key)).await
    }

    async fn pop(&self, name: &str, op: &str, key: &str, count: usize) -> Result<Vec<Bytes>> {
        self.limits_ref().check_key(key)?;
        self.args().count(count)?;
        let mut cmd = self.key_command(name, key, 1, 20);
        cmd.arg(count);
        // An absent list is nil; otherwise an array of what was taken.
        let popped: Option<Vec<Bytes>> = self.query(&cmd, op, Some(key)).await?;
        Ok(popped.unwrap_or_default())
    }

    async fn members_command(
        &self,
        name: &str,
        op: &str,
        key: &str,
        members: &[Bytes],
    ) -> Result<u64> {
        self.limits_ref().check_key(key)?;
        let args = self.args();
        args.not_empty("members", members)?;
        for member in members {
            args.member(member)?;
        }
        let bytes = members.iter().map(Bytes::len).sum();
        let mut cmd = self.key_command(name, key, members.len(), bytes);
        for member in members {
            cmd.arg(member.as_ref());
        }
        self.query(&cmd, op, Some(key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_bounds_as_redis_reads_them() {
        assert_eq!(score_text(1.5), "1.5");
        assert_eq!(score_text(f64::INFINITY), "+inf");
        assert_eq!(score_text(-0.1), "-0.1");
        assert_eq!(score_arg(ScoreBound::Exclusive(2.0), "-inf").unwrap(), "(2");
        assert_eq!(score_arg(ScoreBound::Unbounded, "+inf").unwrap(), "+inf");
        assert!(score_arg(ScoreBound::Inclusive(f64::NAN), "-inf").is_err());
    }

    #[test]
    fn zrange_replies_of_both_protocols_parse() {
        let resp2 = Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"1.5".to_vec()),
            Value::BulkString(b"b".to_vec()),
            Value::BulkString(b"inf".to_vec()),
        ]);
        let resp3 = Value::Array(vec![
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Double(1.5)]),
            Value::Array(vec![
                Value::BulkString(b"b".to_vec()),
                Value::Double(f64::INFINITY),
            ]),
        ]);
        let expected = vec![
            (Bytes::from_static(b"a"), 1.5),
            (Bytes::from_static(b"b"), f64::INFINITY),
        ];
        assert_eq!(scored_members(resp2).unwrap(), expected);
        assert_eq!(scored_members(resp3).unwrap(), expected);
        assert!(scored_members(Value::Int(3)).is_err());
    }
}
