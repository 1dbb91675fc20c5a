//! The embedded store's part of [`Catalog`]: the catalog: applied projects, jobs, apps and releases.

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{Catalog, manifest_without_jobs};

#[async_trait]
impl Catalog for EmbeddedStore {
    async fn list_projects(&self) -> StoreResult<Vec<ProjectRecord>> {
        self.run("listing projects", |conn| {
            select_all(
                conn,
                "projects",
                PROJECT_COLUMNS,
                "name",
                None,
                ProjectRow::read,
            )
        })
        .await?
        .into_iter()
        .map(ProjectRow::decode)
        .collect()
    }

    async fn get_project(&self, name: &str) -> StoreResult<Option<ProjectRecord>> {
        let name = name.to_string();
        self.run("reading a project", move |conn| {
            select_one(
                conn,
                "projects",
                PROJECT_COLUMNS,
                "name",
                &name,
                ProjectRow::read,
            )
        })
        .await?
        .map(ProjectRow::decode)
        .transpose()
    }

    async fn put_project(&self, record: &ProjectRecord) -> StoreResult<()> {
        let r = record.clone();
        let manifest = to_json(&r.manifest);
        self.run("writing a project", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO projects (name, hash, source, active, applied_at, manifest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                r.name,
                r.hash,
                r.source,
                r.active,
                to_ms(r.applied_at),
                manifest
            ])?;
            Ok(())
        })
        .await
    }

    async fn list_jobs(&self, project: Option<&str>) -> StoreResult<Vec<JobRecord>> {
        let project = project.map(str::to_string);
        self.run("listing jobs", move |conn| {
            select_all(
                conn,
                "jobs",
                JOB_COLUMNS,
                "id",
                project.as_deref(),
                JobRow::read,
            )
        })
        .await?
        .into_iter()
        .map(JobRow::decode)
        .collect()
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        let id = id.to_string();
        self.run("reading a job", move |conn| {
            select_one(conn, "jobs", JOB_COLUMNS, "id", &id, JobRow::read)
        })
        .await?
        .map(JobRow::decode)
        .transpose()
    }

    async fn get_project_and_job(
        &self,
        project: &str,
        job: &str,
    ) -> StoreResult<(Option<ProjectRecord>, Option<JobRecord>)> {
        let (project, job) = (project.to_string(), job.to_string());
        let manifests = Arc::clone(&self.manifests);
        let (project, job) = self
            .run("reading a run's project and job", move |conn| {
                project_and_job_in(conn, &manifests, &project, &job)
            })
            .await?;
        Ok((
            project.map(ProjectRow::decode).transpose()?,
            job.map(JobRow::decode).transpose()?,
        ))
    }

    async fn put_job(&self, record: &JobRecord) -> StoreResult<()> {
        let r = record.clone();
        let definition = to_json(&r.definition);
        self.run("writing a job", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO jobs
                   (id, project, name, hash, active, next_fire, last_fire, updated_at, definition)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                r.id,
                r.project,
                r.name,
                r.hash,
                r.active,
                r.next_fire.map(to_ms),
                r.last_fire.map(to_ms),
                to_ms(r.updated_at),
                definition
            ])?;
            Ok(())
        })
        .await
    }

    async fn jobs_marker(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let (count, latest) = self
            .run("reading the jobs' marker", |conn| {
                conn.prepare_cached("SELECT COUNT(*), MAX(updated_at) FROM jobs")?
                    .query_row([], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
                    })
            })
            .await?;
        let latest = latest.map(|ms| from_ms("jobs", ms)).transpose()?;
        Ok((u64::try_from(count).unwrap_or(0), latest))
    }

    async fn list_apps(&self, project: Option<&str>) -> StoreResult<Vec<AppRecord>> {
        let project = project.map(str::to_string);
        self.run("listing apps", move |conn| {
            select_all(
                conn,
                "apps",
                APP_COLUMNS,
                "id",
                project.as_deref(),
                AppRow::read,
            )
        })
        .await?
        .into_iter()
        .map(AppRow::decode)
        .collect()
    }

    async fn get_app(&self, id: &str) -> StoreResult<Option<AppRecord>> {
        let id = id.to_string();
        self.run("reading an app", move |conn| {
            select_one(conn, "apps", APP_COLUMNS, "id", &id, AppRow::read)
        })
        .await?
        .map(AppRow::decode)
        .transpose()
    }

    async fn put_app(&self, record: &AppRecord) -> StoreResult<()> {
        let r = record.clone();
        let definition = to_json(&r.definition);
        self.run("writing an app", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO apps
                   (id, project, name, hash, active, updated_at, definition)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.id,
                r.project,
                r.name,
                r.hash,
                r.active,
                to_ms(r.updated_at),
                definition
            ])?;
            Ok(())
        })
        .await
    }

    async fn put_release(&self, release: &ReleaseRecord) -> StoreResult<()> {
        let mut release = release.clone();
        let at = to_ms(release.at);
        release.at = from_ms("release", at)?;
        let doc = serde_json::to_string(&release)
            .map_err(|e| StoreError::invalid("recording a release", e))?;
        self.run("recording a release", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO releases (project, version, at, doc) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![release.project, release.version, at, doc])?;
            Ok(())
        })
        .await
    }

    async fn list_releases(&self, project: Option<&str>) -> StoreResult<Vec<ReleaseRecord>> {
        let project = project.map(str::to_string);
        let docs = self
            .run("listing releases", move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT doc FROM releases WHERE ?1 IS NULL OR project = ?1
                     ORDER BY at DESC, project, version DESC",
                )?;
                stmt.query_map([project], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<ReleaseRecord>(doc)
                    .map_err(|e| StoreError::corrupt("release", e))
            })
            .collect()
    }
}

/// A `projects` row as stored; [`ProjectRow::decode`] checks and converts it.
pub(super) struct ProjectRow {
    head: ProjectHead,
    manifest: String,
}

/// The columns of [`ProjectRow`]: [`ProjectHead`]'s, then the manifest.
pub(super) const PROJECT_COLUMNS: &str = "name, hash, source, active, applied_at, manifest";

impl ProjectRow {
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            head: ProjectHead::read(row)?,
            manifest: row.get(5)?,
        })
    }

    pub(super) fn decode(self) -> StoreResult<ProjectRecord> {
        let ProjectRow { head, manifest } = self;
        let what = format!("project {}", head.name);
        Ok(ProjectRecord {
            manifest: from_json(&what, &manifest)?,
            applied_at: from_ms(&what, head.applied_at)?,
            name: head.name,
            hash: head.hash,
            source: head.source,
            active: head.active,
        })
    }
}

/// A `jobs` row as stored.
pub(super) struct JobRow {
    id: String,
    project: String,
    name: String,
    hash: String,
    active: bool,
    next_fire: Option<i64>,
    last_fire: Option<i64>,
    updated_at: i64,
    definition: String,
}

pub(super) const JOB_COLUMNS: &str =
    "id, project, name, hash, active, next_fire, last_fire, updated_at, definition";

impl JobRow {
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            project: row.get(1)?,
            name: row.get(2)?,
            hash: row.get(3)?,
            active: row.get(4)?,
            next_fire: row.get(5)?,
            last_fire: row.get(6)?,
            updated_at: row.get(7)?,
            definition: row.get(8)?,
        })
    }

    pub(super) fn decode(self) -> StoreResult<JobRecord> {
        let what = format!("job {}", self.id);
        Ok(JobRecord {
            definition: from_json(&what, &self.definition)?,
            next_fire: self.next_fire.map(|ms| from_ms(&what, ms)).transpose()?,
            last_fire: self.last_fire.map(|ms| from_ms(&what, ms)).transpose()?,
            updated_at: from_ms(&what, self.updated_at)?,
            id: self.id,
            project: self.project,
            name: self.name,
            hash: self.hash,
            active: self.active,
        })
    }
}

/// An `apps` row as stored.
pub(super) struct AppRow {
    id: String,
    project: String,
    name: String,
    hash: String,
    active: bool,
    updated_at: i64,
    definition: String,
}

pub(super) const APP_COLUMNS: &str = "id, project, name, hash, active, updated_at, definition";

impl AppRow {
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            project: row.get(1)?,
            name: row.get(2)?,
            hash: row.get(3)?,
            active: row.get(4)?,
            updated_at: row.get(5)?,
            definition: row.get(6)?,
        })
    }

    pub(super) fn decode(self) -> StoreResult<AppRecord> {
        let what = format!("app {}", self.id);
        Ok(AppRecord {
            definition: from_json(&what, &self.definition)?,
            updated_at: from_ms(&what, self.updated_at)?,
            id: self.id,
            project: self.project,
            name: self.name,
            hash: self.hash,
            active: self.active,
        })
    }
}

/// The rows of project `project` (its manifest with the `jobs` emptied, see
/// [`ClaimManifests`]) and job `job`.
pub(super) fn project_and_job_in(
    conn: &Connection,
    manifests: &ClaimManifests,
    project: &str,
    job: &str,
) -> rusqlite::Result<(Option<ProjectRow>, Option<JobRow>)> {
    let project = match select_one(
        conn,
        "projects",
        "name, hash, source, active, applied_at",
        "name",
        project,
        ProjectHead::read,
    )? {
        Some(head) => Some(manifests.row_of(conn, head)?),
        None => None,
    };
    let job = select_one(conn, "jobs", JOB_COLUMNS, "id", job, JobRow::read)?;
    Ok((project, job))
}

/// A `projects` row but its manifest (the first five of [`PROJECT_COLUMNS`]).
struct ProjectHead {
    name: String,
    hash: String,
    source: String,
    active: bool,
    applied_at: i64,
}

impl ProjectHead {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get(0)?,
            hash: row.get(1)?,
            source: row.get(2)?,
            active: row.get(3)?,
            applied_at: row.get(4)?,
        })
    }
}

/// The manifests of projects with their `jobs` emptied (as JSON text), by project name, each
/// with the project's hash it was read at: what claims read of a project. A manifest holds
/// every job of its project, so reading and parsing it whole for each claim made a burst of
/// N runs of one project cost O(N²); a claim reads the project's other columns, and its
/// manifest only when this holds none for the project's current hash (an apply that
/// changes the manifest changes the hash). Only a cache: the store stays the one truth.
#[derive(Debug, Default)]
pub(super) struct ClaimManifests(Mutex<HashMap<String, (String, String)>>);

impl ClaimManifests {
    /// `head` with its manifest, jobs emptied: from here while its hash holds, else read
    /// (a manifest that does not parse is returned whole, for the decoder to report).
    fn row_of(&self, conn: &Connection, head: ProjectHead) -> rusqlite::Result<ProjectRow> {
        let kept = self
            .lock()
            .get(&head.name)
            .and_then(|(hash, manifest)| (*hash == head.hash).then(|| manifest.clone()));
        let manifest = match kept {
            Some(manifest) => manifest,
            None => {
                // The hash again, with the manifest it belongs to.
                let (hash, full): (String, String) = conn
                    .prepare_cached("SELECT hash, manifest FROM projects WHERE name = ?1")?
                    .query_row([&head.name], |row| Ok((row.get(0)?, row.get(1)?)))?;
                match serde_json::from_str::<serde_json::Value>(&full) {
                    Ok(value) => {
                        let manifest = to_json(&manifest_without_jobs(&value));
                        self.lock()
                            .insert(head.name.clone(), (hash, manifest.clone()));
                        manifest
                    }
                    Err(_) => full,
                }
            }
        };
        Ok(ProjectRow { head, manifest })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
