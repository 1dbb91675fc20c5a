//! The embedded store's part of [`Journal`]: the journal: log records and each daemon's manifest problems.

use super::*;
use crate::store::Journal;

#[async_trait]
impl Journal for EmbeddedStore {
    async fn put_problems(&self, problems: &Problems) -> StoreResult<()> {
        let mut problems = problems.clone();
        problems.at =
            DateTime::from_timestamp_millis(problems.at.timestamp_millis()).unwrap_or(problems.at);
        let doc = serde_json::to_string(&problems)
            .map_err(|e| StoreError::invalid("recording manifest problems", e))?;
        self.run("recording manifest problems", move |conn| {
            if problems.problems.is_empty() {
                conn.prepare_cached("DELETE FROM problems WHERE source = ?1")?
                    .execute([&problems.source])?;
            } else {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO problems (source, doc) VALUES (?1, ?2)",
                )?
                .execute([&problems.source, &doc])?;
            }
            Ok(())
        })
        .await
    }

    async fn append_log(&self, records: &[LogRecord]) -> StoreResult<()> {
        let rows = records
            .iter()
            .map(|record| {
                let at = record.at.timestamp_millis();
                let mut record = record.clone();
                record.at = DateTime::from_timestamp_millis(at).unwrap_or(record.at);
                serde_json::to_string(&record)
                    .map(|doc| (record.id, at, doc))
                    .map_err(|e| StoreError::invalid("storing log records", e))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.run("storing log records", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO log (id, at, doc) VALUES (?1, ?2, ?3)",
                )?;
                for (id, at, doc) in &rows {
                    insert.execute(params![id, at, doc])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn list_log(&self, filter: &LogFilter) -> StoreResult<Vec<LogRecord>> {
        use rusqlite::types::Value;
        let filter = filter.clone();
        let docs = self
            .run("reading the log", move |conn| {
                let mut conditions = Vec::new();
                let mut values: Vec<Value> = Vec::new();
                for (field, value) in [
                    ("project", filter.project),
                    ("job", filter.job),
                    ("run", filter.run),
                    ("app", filter.app),
                ] {
                    if let Some(value) = value {
                        values.push(Value::Text(value));
                        conditions.push(format!(
                            "json_extract(doc, '$.{field}') = ?{}",
                            values.len()
                        ));
                    }
                }
                if let Some(levelno) = filter.min_levelno {
                    values.push(Value::Integer(levelno.into()));
                    conditions.push(format!(
                        "json_extract(doc, '$.levelno') >= ?{}",
                        values.len()
                    ));
                }
                if let Some(since) = filter.since {
                    values.push(Value::Integer(since.timestamp_millis()));
                    conditions.push(format!("at >= ?{}", values.len()));
                }
                let mut sql = "SELECT doc FROM log".to_string();
                if !conditions.is_empty() {
                    sql += &format!(" WHERE {}", conditions.join(" AND "));
                }
                sql += " ORDER BY at DESC, id DESC";
                if let Some(limit) = filter.limit {
                    sql += &format!(" LIMIT {limit}");
                }
                conn.prepare_cached(&sql)?
                    .query_map(params_from_iter(values), |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        let mut records = docs
            .iter()
            .map(|doc| {
                serde_json::from_str::<LogRecord>(doc)
                    .map_err(|e| StoreError::corrupt("log record", e))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        records.reverse();
        Ok(records)
    }

    async fn prune_log(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = before.timestamp_millis();
        self.run("pruning the log", move |conn| {
            conn.prepare_cached("DELETE FROM log WHERE at < ?1")?
                .execute([before])
                .map(|n| n as u64)
        })
        .await
    }

    async fn list_problems(&self) -> StoreResult<Vec<Problems>> {
        let docs = self
            .run("listing manifest problems", |conn| {
                conn.prepare_cached("SELECT doc FROM problems ORDER BY source")?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<Problems>(doc)
                    .map_err(|e| StoreError::corrupt("problems", e))
            })
            .collect()
    }
}
