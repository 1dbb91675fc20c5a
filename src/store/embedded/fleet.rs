//! The embedded store's part of [`Fleet`]: the fleet: live members (workers, daemons), operator switches (pause, halt), app ownership.

use super::*;
use crate::store::Fleet;
use crate::store::rules::{AppHolder, app_claim, next_app_token};

#[async_trait]
impl Fleet for EmbeddedStore {
    async fn control(&self) -> StoreResult<Control> {
        self.run("reading pauses and halts", |conn| {
            let rows = conn
                .prepare_cached("SELECT key, at FROM control ORDER BY key")?
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut control = Control::default();
            for (key, at) in rows {
                match key.as_str() {
                    "halt" => control.halt_before = DateTime::from_timestamp_millis(at),
                    "pause" => control.paused_all = true,
                    _ => {
                        if let Some(project) = key.strip_prefix("pause:") {
                            control.paused_projects.push(project.to_string());
                        } else if let (Some(app), Some(at)) = (
                            key.strip_prefix("restart:"),
                            DateTime::from_timestamp_millis(at),
                        ) {
                            control.app_restarts.insert(app.to_string(), at);
                        }
                    }
                }
            }
            Ok(control)
        })
        .await
    }

    async fn set_paused(&self, project: Option<&str>, paused: bool) -> StoreResult<()> {
        let key = project.map_or_else(|| "pause".to_string(), |p| format!("pause:{p}"));
        let at = to_ms(Utc::now());
        self.run("pausing or resuming", move |conn| {
            if paused {
                conn.prepare_cached("INSERT OR REPLACE INTO control (key, at) VALUES (?1, ?2)")?
                    .execute(params![key, at])?;
            } else {
                conn.prepare_cached("DELETE FROM control WHERE key = ?1")?
                    .execute([key])?;
            }
            Ok(())
        })
        .await
    }

    async fn request_app_restart(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let key = format!("restart:{id}");
        let at = to_ms(at);
        self.run("asking for an app restart", move |conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO control (key, at) VALUES (?1, ?2)")?
                .execute(params![key, at])?;
            Ok(())
        })
        .await
    }

    async fn halt(&self, before: DateTime<Utc>) -> StoreResult<()> {
        let at = to_ms(before);
        self.run("recording a halt", move |conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO control (key, at) VALUES ('halt', ?1)")?
                .execute([at])?;
            Ok(())
        })
        .await
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        let doc = serde_json::to_string(member)
            .map_err(|e| StoreError::invalid("recording a worker", e))?;
        let (name, heartbeat) = (member.name.clone(), to_ms(member.heartbeat));
        self.run("recording a worker", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO workers (id, heartbeat, doc) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![name, heartbeat, doc])?;
            Ok(())
        })
        .await
    }

    async fn remove_member(&self, name: &str) -> StoreResult<()> {
        let name = name.to_string();
        self.run("forgetting a worker", move |conn| {
            conn.prepare_cached("DELETE FROM workers WHERE id = ?1")?
                .execute([name])?;
            Ok(())
        })
        .await
    }

    async fn list_members(&self) -> StoreResult<Vec<MemberRecord>> {
        let docs = self
            .run("listing workers", |conn| {
                conn.prepare_cached("SELECT doc FROM workers ORDER BY id")?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<MemberRecord>(doc)
                    .map_err(|e| StoreError::corrupt("workers", e))
            })
            .map(|member| member.map(MemberRecord::truncated_to_ms))
            .collect()
    }

    async fn claim_app(
        &self,
        status: &AppStatus,
        stale_before: DateTime<Utc>,
    ) -> StoreResult<Option<u64>> {
        let mut status = status.clone().truncated_to_ms();
        self.run("claiming an app", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let holder: Option<(String, i64, i64)> = tx
                .prepare_cached("SELECT owner, heartbeat, token FROM app_status WHERE id = ?1")?
                .query_row([&status.id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            let claim = app_claim(
                holder.as_ref().map(|(owner, heartbeat, _)| AppHolder {
                    owner,
                    heartbeat: DateTime::from_timestamp_millis(*heartbeat),
                }),
                &status.owner,
                stale_before,
            );
            if !claim.wins() {
                return Ok(None);
            }
            let output = format!("app:{}", status.id);
            let fence: i64 = tx
                .prepare_cached("SELECT fence FROM outputs WHERE id = ?1")?
                .query_row([&output], |row| row.get(0))
                .optional()?
                .unwrap_or(0);
            let held = holder.map_or(0, |(_, _, token)| token);
            status.token = next_app_token(as_u64(held), as_u64(fence));
            let doc = serde_json::to_string(&status)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO app_status (id, owner, heartbeat, doc, token)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                status.id,
                status.owner,
                to_ms(status.heartbeat),
                doc,
                as_i64(status.token)
            ])?;
            super::queue::raise_output_fence(&tx, &output, status.token)?;
            tx.commit()?;
            Ok(Some(status.token))
        })
        .await
    }

    async fn renew_app(&self, status: &AppStatus) -> StoreResult<bool> {
        let status = status.clone().truncated_to_ms();
        let doc = serde_json::to_string(&status)
            .map_err(|e| StoreError::invalid("recording an app's status", e))?;
        self.run("recording an app's status", move |conn| {
            let written = conn
                .prepare_cached(
                    "UPDATE app_status SET heartbeat = ?4, doc = ?5
                     WHERE id = ?1 AND owner = ?2 AND token = ?3",
                )?
                .execute(params![
                    status.id,
                    status.owner,
                    as_i64(status.token),
                    to_ms(status.heartbeat),
                    doc
                ])?;
            Ok(written == 1)
        })
        .await
    }

    async fn release_app(&self, id: &str, owner: &str, token: u64) -> StoreResult<()> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.run("releasing an app", move |conn| {
            conn.prepare_cached(
                "DELETE FROM app_status WHERE id = ?1 AND owner = ?2 AND token = ?3",
            )?
            .execute(params![id, owner, as_i64(token)])?;
            Ok(())
        })
        .await
    }

    async fn list_app_status(&self) -> StoreResult<Vec<AppStatus>> {
        let docs = self
            .run("listing app statuses", |conn| {
                conn.prepare_cached("SELECT doc FROM app_status ORDER BY id")?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<AppStatus>(doc)
                    .map_err(|e| StoreError::corrupt("app_status", e))
            })
            .collect()
    }
}

/// Tokens are kept as SQLite integers (a token never reaches 2^63).
fn as_i64(token: u64) -> i64 {
    i64::try_from(token).unwrap_or(i64::MAX)
}

fn as_u64(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}
