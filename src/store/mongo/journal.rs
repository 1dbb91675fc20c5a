//! The MongoDB store's part of [`Journal`]: the journal: log records and each daemon's manifest problems.

use super::*;
use crate::store::Journal;

#[async_trait]
impl Journal for MongoStore {
    async fn put_problems(&self, problems: &Problems) -> StoreResult<()> {
        let doing = "recording manifest problems";
        if problems.problems.is_empty() {
            return self
                .collection("problems")
                .delete_one(doc! { "_id": &problems.source })
                .await
                .map(|_| ())
                .map_err(self.err(doing));
        }
        let doc = encode(problems)?;
        self.upsert("problems", doc, doing).await
    }

    async fn list_problems(&self) -> StoreResult<Vec<Problems>> {
        let doing = "listing manifest problems";
        let docs = self
            .find_all("problems", doc! {}, doc! { "_id": 1 }, None, doing)
            .await?;
        docs.iter().map(decode).collect()
    }

    async fn append_log(&self, records: &[LogRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let docs = records
            .iter()
            .map(encode)
            .collect::<StoreResult<Vec<_>>>()?;
        match self
            .collection("log")
            .insert_many(docs)
            .ordered(false)
            .await
        {
            Ok(_) => Ok(()),
            // A retried batch: the records stored the first time stay as they are.
            Err(e) if only_duplicates(&e) => Ok(()),
            Err(e) => Err(self.err("storing log records")(e)),
        }
    }

    async fn list_log(&self, filter: &LogFilter) -> StoreResult<Vec<LogRecord>> {
        let doing = "reading the log";
        let mut query = doc! {};
        for (field, value) in [
            ("project", &filter.project),
            ("job", &filter.job),
            ("run", &filter.run),
            ("app", &filter.app),
        ] {
            if let Some(value) = value {
                query.insert(field, value);
            }
        }
        if let Some(levelno) = filter.min_levelno {
            query.insert("levelno", doc! { "$gte": i32::from(levelno) });
        }
        if let Some(since) = filter.since {
            query.insert("at", doc! { "$gte": time(since) });
        }
        let limit = filter.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let docs = self
            .find_all("log", query, doc! { "at": -1, "_id": -1 }, limit, doing)
            .await?;
        let mut records = docs.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        records.reverse();
        Ok(records)
    }

    async fn prune_log(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.collection("log")
            .delete_many(doc! { "at": { "$lt": time(before) } })
            .await
            .map(|result| result.deleted_count)
            .map_err(self.err("pruning the log"))
    }
}
