//! The id of a job across the store: `project.job` (an app's id has the same shape,
//! `project.app`). Built and taken apart here only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `project.job`: a project name and a job name joined by a dot (project and job names
/// hold no dot, so the first dot splits them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// The id of job `name` of `project`.
    pub fn new(project: &str, name: &str) -> Self {
        JobId(format!("{project}.{name}"))
    }

    /// `id` as a job id, if it is `PROJECT.JOB` with both parts there.
    pub fn parse(id: &str) -> Option<Self> {
        Self::split(id).map(|_| JobId(id.to_owned()))
    }

    /// `id`'s project and job names, split at its first dot; `None` unless both are there.
    pub fn split(id: &str) -> Option<(&str, &str)> {
        id.split_once('.')
            .filter(|(project, job)| !project.is_empty() && !job.is_empty())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        self.parts().0
    }

    /// The job's name within its project.
    pub fn name(&self) -> &str {
        self.parts().1
    }

    fn parts(&self) -> (&str, &str) {
        self.0.split_once('.').unwrap_or((&self.0, ""))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl AsRef<str> for JobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::JobId;

    #[test]
    fn a_job_id_is_built_and_split_at_its_first_dot() {
        let id = JobId::new("shop", "report");
        assert_eq!(id.as_str(), "shop.report");
        assert_eq!(id.to_string(), "shop.report");
        assert_eq!((id.project(), id.name()), ("shop", "report"));
        assert_eq!(JobId::parse("shop.report"), Some(id.clone()));
        assert_eq!(
            serde_json::to_value(&id).unwrap(),
            serde_json::json!("shop.report")
        );
        assert_eq!(String::from(id), "shop.report");

        assert_eq!(JobId::split("p.j.k"), Some(("p", "j.k")));
        for bad in ["pj", ".j", "p.", ""] {
            assert_eq!(JobId::parse(bad), None, "{bad}");
        }
    }
}
