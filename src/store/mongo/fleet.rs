//! The MongoDB store's part of [`Fleet`]: the fleet: live members (workers, daemons), operator switches (pause, halt), app ownership.

use super::marker::LockId;
use super::*;
use crate::store::Fleet;
use crate::store::rules::{AppClaim, AppHolder, app_claim, next_app_token};

/// A take-over marker older than this was left by a claimant that died mid-way.
const TAKEOVER_ABANDONED: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

#[async_trait]
impl Fleet for MongoStore {
    async fn control(&self) -> StoreResult<Control> {
        let doing = "reading pauses and halts";
        let docs = self
            .find_all("control", doc! {}, doc! { "_id": 1 }, None, doing)
            .await?;
        let mut control = Control::default();
        for doc in docs {
            let ControlDoc { key, before } = decode_plain("control", &doc)?;
            match key.as_str() {
                "halt" => {
                    control.halt_before =
                        Some(before.ok_or_else(|| corrupt("control halt", "no \"before\""))?);
                }
                "pause" => control.paused_all = true,
                _ => {
                    if let Some(project) = key.strip_prefix("pause:") {
                        control.paused_projects.push(project.to_string());
                    } else if let (Some(app), Some(at)) = (key.strip_prefix("restart:"), before) {
                        control.app_restarts.insert(app.to_string(), at);
                    }
                }
            }
        }
        Ok(control)
    }

    async fn set_paused(&self, project: Option<&str>, paused: bool) -> StoreResult<()> {
        let key = project.map_or_else(|| "pause".to_string(), |p| format!("pause:{p}"));
        let doing = if paused { "pausing" } else { "resuming" };
        if paused {
            self.upsert(
                "control",
                doc! { "_id": &key, "at": time(Utc::now()) },
                doing,
            )
            .await
        } else {
            self.collection("control")
                .delete_one(doc! { "_id": &key })
                .await
                .map(|_| ())
                .map_err(self.err(doing))
        }
    }

    async fn request_app_restart(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.upsert(
            "control",
            doc! { "_id": format!("restart:{id}"), "before": time(at) },
            "asking for an app restart",
        )
        .await
    }

    async fn halt(&self, before: DateTime<Utc>) -> StoreResult<()> {
        self.upsert(
            "control",
            doc! { "_id": "halt", "before": time(before) },
            "recording a halt",
        )
        .await
    }

    async fn claim_app(
        &self,
        status: &AppStatus,
        stale_before: DateTime<Utc>,
    ) -> StoreResult<Option<u64>> {
        let doing = "claiming an app";
        let mut status = status.clone().truncated_to_ms();
        let output = format!("app:{}", status.id);
        // Every claim raises the output's fence to its token: the fence is the floor of the
        // next token even once the status record is gone (released).
        let mut floor = self
            .collection("outputs")
            .find_one(doc! { "_id": &output })
            .projection(doc! { "fence": 1 })
            .await
            .map_err(self.err(doing))?
            .and_then(|doc| doc.get_i64("fence").ok())
            .map_or(0, |fence| u64::try_from(fence).unwrap_or(0));
        let coll = self.collection("app_status");
        // Single-document updates may not be atomic (FerretDB): a free app is won by an
        // insert, a stale holder is removed by a delete that names its heartbeat (one
        // deleter succeeds), and only the holder replaces its own record, naming its token.
        for _ in 0..3 {
            status.token = next_app_token(floor, 0);
            let record = app_record(&status, doing)?;
            match coll.insert_one(record.clone()).await {
                Ok(_) => {
                    self.raise_output_fence(&output, status.token).await?;
                    return Ok(Some(status.token));
                }
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(self.err(doing)(e)),
            }
            let Some(current) = coll
                .find_one(doc! { "_id": &status.id })
                .await
                .map_err(self.err(doing))?
            else {
                continue; // released meanwhile: try the insert again
            };
            let owner = current.get_str("owner").unwrap_or_default().to_owned();
            let heartbeat = current
                .get_datetime("heartbeat")
                .ok()
                .map(|t| t.to_chrono());
            let held = current.get_i64("token").unwrap_or(0);
            floor = floor.max(u64::try_from(held).unwrap_or(0));
            let holder = AppHolder {
                owner: &owner,
                heartbeat,
            };
            match app_claim(Some(holder), &status.owner, stale_before) {
                AppClaim::Renew => {
                    // An earlier task of this owner: a new hold all the same.
                    status.token = next_app_token(floor, 0);
                    let replaced = coll
                        .replace_one(
                            doc! { "_id": &status.id, "owner": &owner, "token": held },
                            app_record(&status, doing)?,
                        )
                        .await
                        .map_err(self.err(doing))?;
                    if replaced.matched_count != 1 {
                        return Ok(None);
                    }
                    self.raise_output_fence(&output, status.token).await?;
                    return Ok(Some(status.token));
                }
                AppClaim::TakeOver => {
                    let Some(heartbeat) = heartbeat else {
                        return Ok(None);
                    };
                    // One claimant wins the take-over of this hold: the insert of its marker
                    // (a delete or replace may not be atomic on every server, an insert is).
                    let marker = LockId::take_over(&status.id, held);
                    let now = Utc::now();
                    let inserted = self
                        .locks()
                        .insert_one(doc! {
                            "_id": marker.to_string(), "kind": marker.kind(), "at": time(now),
                        })
                        .await;
                    match inserted {
                        Ok(_) => {}
                        Err(e) if is_duplicate_key(&e) => {
                            // Another claimant's; one left by a claimant that died between
                            // its insert and its delete is removed (the next sync retries).
                            let abandoned = now - TAKEOVER_ABANDONED;
                            let _ = self
                                .locks()
                                .delete_one(doc! {
                                    "_id": marker.to_string(), "at": { "$lt": time(abandoned) },
                                })
                                .await;
                            return Ok(None);
                        }
                        Err(e) => return Err(self.err(doing)(e)),
                    }
                    status.token = next_app_token(floor, 0);
                    let replaced = coll
                        .replace_one(
                            doc! {
                                "_id": &status.id, "owner": &owner, "token": held,
                                "heartbeat": time(heartbeat),
                            },
                            app_record(&status, doing)?,
                        )
                        .await
                        .map_err(self.err(doing));
                    // Useless once the hold moved on (or did not): its token is gone.
                    let _ = self
                        .locks()
                        .delete_one(doc! { "_id": marker.to_string() })
                        .await;
                    if replaced?.matched_count != 1 {
                        return Ok(None);
                    }
                    self.raise_output_fence(&output, status.token).await?;
                    return Ok(Some(status.token));
                }
                AppClaim::Free | AppClaim::Held => return Ok(None),
            }
        }
        Ok(None)
    }

    async fn renew_app(&self, status: &AppStatus) -> StoreResult<bool> {
        let doing = "recording an app's status";
        let status = status.clone().truncated_to_ms();
        let token = i64::try_from(status.token).unwrap_or(i64::MAX);
        let replaced = self
            .collection("app_status")
            .replace_one(
                doc! { "_id": &status.id, "owner": &status.owner, "token": token },
                app_record(&status, doing)?,
            )
            .await
            .map_err(self.err(doing))?;
        Ok(replaced.matched_count == 1)
    }

    async fn release_app(&self, id: &str, owner: &str, token: u64) -> StoreResult<()> {
        let token = i64::try_from(token).unwrap_or(i64::MAX);
        self.collection("app_status")
            .delete_one(doc! { "_id": id, "owner": owner, "token": token })
            .await
            .map(|_| ())
            .map_err(self.err("releasing an app"))
    }

    async fn list_app_status(&self) -> StoreResult<Vec<AppStatus>> {
        let doing = "listing app statuses";
        let docs = self
            .find_all("app_status", doc! {}, doc! { "_id": 1 }, None, doing)
            .await?;
        docs.iter()
            .map(|doc| {
                let json = doc
                    .get_str("status_json")
                    .map_err(|e| corrupt("app status", e))?;
                serde_json::from_str::<AppStatus>(json).map_err(|e| corrupt("app status", e))
            })
            .collect()
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        self.upsert("workers", encode(member)?, "recording a worker")
            .await
    }

    async fn remove_member(&self, name: &str) -> StoreResult<()> {
        self.collection("workers")
            .delete_one(doc! { "_id": name })
            .await
            .map(|_| ())
            .map_err(self.err("forgetting a worker"))
    }

    async fn list_members(&self) -> StoreResult<Vec<MemberRecord>> {
        let doing = "listing workers";
        let docs = self
            .find_all("workers", doc! {}, doc! { "_id": 1 }, None, doing)
            .await?;
        docs.iter().map(decode).collect()
    }
}

/// The `app_status` document of `status`: owner, heartbeat and token as fields the claim
/// filters on, the whole status as JSON.
fn app_record(status: &AppStatus, doing: &str) -> StoreResult<Document> {
    let json = serde_json::to_string(status).map_err(|e| StoreError::invalid(doing, e))?;
    Ok(doc! {
        "_id": &status.id,
        "owner": &status.owner,
        "heartbeat": time(status.heartbeat),
        "token": i64::try_from(status.token).unwrap_or(i64::MAX),
        "status_json": json,
    })
}
