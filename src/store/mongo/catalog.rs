//! The MongoDB store's part of [`Catalog`]: the catalog: applied projects, jobs, apps and releases.

use super::*;
use crate::store::Catalog;

#[async_trait]
impl Catalog for MongoStore {
    async fn list_projects(&self) -> StoreResult<Vec<ProjectRecord>> {
        self.find_sorted("projects", doc! {}, "listing projects")
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn get_project(&self, name: &str) -> StoreResult<Option<ProjectRecord>> {
        self.find_by_id("projects", name, "reading a project")
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn put_project(&self, record: &ProjectRecord) -> StoreResult<()> {
        self.upsert("projects", encode(record)?, "writing a project")
            .await
    }

    async fn list_jobs(&self, project: Option<&str>) -> StoreResult<Vec<JobRecord>> {
        self.find_sorted("jobs", project_filter(project), "listing jobs")
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        self.find_by_id("jobs", id, "reading a job")
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn get_project_and_job(
        &self,
        project: &str,
        job: &str,
    ) -> StoreResult<(Option<ProjectRecord>, Option<JobRecord>)> {
        let doing = "reading a run's project and job";
        // Two round trips in the time of one; the project's jobs left on the server (each
        // is in its own document), emptied as the trait says.
        let project = async {
            self.collection("projects")
                .find_one(doc! { "_id": project })
                .projection(doc! { "manifest.jobs": 0 })
                .await
                .map_err(self.err(doing))
        };
        let (project, job) = tokio::try_join!(project, self.find_by_id("jobs", job, doing))?;
        let project = project.map(|mut project| {
            if let Ok(manifest) = project.get_document_mut("manifest") {
                manifest.insert("jobs", Document::new());
            }
            project
        });
        // A manifest stored as JSON text (one no server stores as is) came whole.
        let project = project
            .as_ref()
            .map(decode::<ProjectRecord>)
            .transpose()?
            .map(|record| ProjectRecord {
                manifest: record.manifest_without_jobs(),
                ..record
            });
        Ok((project, job.as_ref().map(decode).transpose()?))
    }

    async fn put_job(&self, record: &JobRecord) -> StoreResult<()> {
        self.upsert("jobs", encode(record)?, "writing a job").await
    }

    async fn jobs_marker(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let doing = "reading the jobs' marker";
        let count = self
            .collection("jobs")
            .count_documents(doc! {})
            .await
            .map_err(self.err(doing))?;
        let latest = self
            .find_all("jobs", doc! {}, doc! { "updated_at": -1 }, Some(1), doing)
            .await?;
        let latest = latest
            .first()
            .map(|doc| decode::<JobRecord>(doc).map(|job| job.updated_at))
            .transpose()?;
        Ok((count, latest))
    }

    async fn list_apps(&self, project: Option<&str>) -> StoreResult<Vec<AppRecord>> {
        self.find_sorted("apps", project_filter(project), "listing apps")
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn get_app(&self, id: &str) -> StoreResult<Option<AppRecord>> {
        self.find_by_id("apps", id, "reading an app")
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn put_app(&self, record: &AppRecord) -> StoreResult<()> {
        self.upsert("apps", encode(record)?, "writing an app").await
    }

    async fn put_release(&self, release: &ReleaseRecord) -> StoreResult<()> {
        let mut doc = encode(release)?;
        // The project name has no `@`, so distinct pairs never share an `_id`.
        doc.insert("_id", format!("{}@{}", release.project, release.version));
        self.upsert("releases", doc, "recording a release").await
    }

    async fn list_releases(&self, project: Option<&str>) -> StoreResult<Vec<ReleaseRecord>> {
        let filter = match project {
            Some(project) => doc! { "project": project },
            None => doc! {},
        };
        let docs = self
            .find_all(
                "releases",
                filter,
                doc! { "at": -1, "project": 1, "version": -1 },
                None,
                "listing releases",
            )
            .await?;
        docs.iter().map(decode).collect()
    }
}
