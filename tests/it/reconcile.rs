//! plan/apply against both store backends: idempotent, exact, and never losing state
//! because of an invalid manifest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use coco::manifest::discover::discover;
use coco::reconcile::{self, Change, Kind, Plan};
use coco::store::Store;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn write(home: &Path, project: &str, text: &str) {
    std::fs::create_dir_all(home.join(project)).unwrap();
    std::fs::write(home.join(project).join("coco.yaml"), text).unwrap();
}

/// Plan the home against the store (the projects of invalid folders are kept).
async fn plan(store: &dyn Store, home: &Path) -> Plan {
    let discovery = discover(home).unwrap();
    let invalid: BTreeSet<PathBuf> = discovery.invalid.keys().cloned().collect();
    let stored = reconcile::load_stored(store).await.unwrap();
    reconcile::diff(&discovery.projects, &stored, &invalid, now())
}

/// Plan and apply; returns the plan applied.
async fn apply(store: &dyn Store, home: &Path) -> Plan {
    let discovery = discover(home).unwrap();
    let invalid: BTreeSet<PathBuf> = discovery.invalid.keys().cloned().collect();
    let stored = reconcile::load_stored(store).await.unwrap();
    let plan = reconcile::diff(&discovery.projects, &stored, &invalid, now());
    reconcile::apply(store, &plan, &stored, now())
        .await
        .unwrap();
    plan
}

/// (kind, name, sign) of every change of a project in a plan.
fn changes(plan: &Plan, project: &str) -> Vec<(Kind, String, &'static str)> {
    plan.projects
        .iter()
        .filter(|p| p.name == project)
        .flat_map(|p| p.items.iter().filter(|i| i.change.is_change()))
        .map(|i| (i.kind, i.name.clone(), i.change.sign()))
        .collect()
}

const SHOP: &str = r#"
project: shop
environment:
  env: {MODE: prod}
jobs:
  export:
    command: [python3, export.py]
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
  sync:
    command: [python3, sync.py]
    schedule: "0 * * * *"
  manual:
    command: [true]
apps:
  web:
    command: [python3, -m, http.server, "8080"]
    port: 8080
    health: {http: /}
"#;

pub async fn first_apply_creates_then_nothing_changes(store: &dyn Store) {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "shop", SHOP);
    let first = apply(store, home.path()).await;
    assert_eq!(
        first.counts(),
        (5, 0, 0),
        "project, 3 jobs and an app are created"
    );
    assert_eq!(first.projects[0].change, Change::Create);
    // The export job's next three fires, in Berlin time.
    let export = first.projects[0]
        .items
        .iter()
        .find(|i| i.name == "export")
        .unwrap();
    let fires: Vec<String> = export.next_fires.iter().map(|t| t.to_rfc3339()).collect();
    assert_eq!(
        fires,
        [
            "2026-01-11T02:30:00+01:00",
            "2026-01-12T02:30:00+01:00",
            "2026-01-13T02:30:00+01:00"
        ]
    );
    let job = store.get_job("shop.export").await.unwrap().unwrap();
    assert!(job.active);
    assert_eq!(
        job.next_fire,
        Some(export.next_fires[0].with_timezone(&Utc))
    );
    assert_eq!(
        store
            .get_job("shop.manual")
            .await
            .unwrap()
            .unwrap()
            .next_fire,
        None
    );
    assert!(store.get_app("shop.web").await.unwrap().unwrap().active);
    let project = store.get_project("shop").await.unwrap().unwrap();
    assert!(project.active);
    assert_eq!(
        project.source,
        home.path().join("shop/coco.yaml").display().to_string()
    );

    let again = plan(store, home.path()).await;
    assert!(!again.has_changes(), "{again:#?}");
    let applied_again = apply(store, home.path()).await;
    assert!(!applied_again.has_changes());
    assert_eq!(store.get_job("shop.export").await.unwrap().unwrap(), job);
}

pub async fn an_edit_updates_only_what_changed(store: &dyn Store) {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "shop", SHOP);
    apply(store, home.path()).await;
    let sync_before = store.get_job("shop.sync").await.unwrap().unwrap();
    let web_before = store.get_app("shop.web").await.unwrap().unwrap();

    write(
        home.path(),
        "shop",
        &SHOP
            .replace("\"30 2 * * *\"", "\"0 4 * * *\"")
            .replace("MODE: prod", "MODE: test")
            .replace(
                "[python3, -m, http.server, \"8080\"]",
                "[python3, -m, http.server, \"8081\"]",
            ),
    );
    let plan = apply(store, home.path()).await;
    assert_eq!(
        changes(&plan, "shop"),
        vec![
            (Kind::Job, "export".to_owned(), "~"),
            (Kind::App, "web".to_owned(), "~")
        ]
    );
    let project = &plan.projects[0];
    let Change::Update(fields) = &project.change else {
        panic!("{:?}", project.change)
    };
    assert_eq!(fields.len(), 1);
    assert_eq!(
        (
            fields[0].field.as_str(),
            fields[0].old.as_str(),
            fields[0].new.as_str()
        ),
        ("environment.env.MODE", "\"prod\"", "\"test\"")
    );
    let export = project.items.iter().find(|i| i.name == "export").unwrap();
    let Change::Update(fields) = &export.change else {
        panic!()
    };
    assert_eq!(
        (
            fields[0].field.as_str(),
            fields[0].old.as_str(),
            fields[0].new.as_str()
        ),
        ("schedule", "\"30 2 * * *\"", "\"0 4 * * *\"")
    );
    assert_eq!(
        store
            .get_job("shop.export")
            .await
            .unwrap()
            .unwrap()
            .next_fire,
        Some(
            DateTime::parse_from_rfc3339("2026-01-11T03:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        ),
        "04:00 in Berlin in January is 03:00 UTC"
    );
    assert_eq!(
        store.get_job("shop.sync").await.unwrap().unwrap(),
        sync_before,
        "untouched"
    );
    let web = store.get_app("shop.web").await.unwrap().unwrap();
    assert_ne!(web.hash, web_before.hash);
    assert!(!self::plan(store, home.path()).await.has_changes());
}

pub async fn a_removed_job_becomes_inactive_and_can_return(store: &dyn Store) {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "shop", SHOP);
    apply(store, home.path()).await;
    let without = SHOP.replace("  manual:\n    command: [true]\n", "");
    write(home.path(), "shop", &without);
    let plan = apply(store, home.path()).await;
    assert_eq!(
        changes(&plan, "shop"),
        vec![(Kind::Job, "manual".to_owned(), "-")]
    );
    let manual = store.get_job("shop.manual").await.unwrap().unwrap();
    assert!(!manual.active, "kept, inactive");
    assert_eq!(manual.definition["command"], serde_json::json!(["true"]));
    assert!(!self::plan(store, home.path()).await.has_changes());

    write(home.path(), "shop", SHOP);
    let plan = apply(store, home.path()).await;
    assert_eq!(
        changes(&plan, "shop"),
        vec![(Kind::Job, "manual".to_owned(), "+")]
    );
    assert!(store.get_job("shop.manual").await.unwrap().unwrap().active);
}

pub async fn a_removed_project_is_deactivated(store: &dyn Store) {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "shop", SHOP);
    write(home.path(), "other", "jobs:\n  x:\n    command: [true]\n");
    apply(store, home.path()).await;
    std::fs::remove_dir_all(home.path().join("shop")).unwrap();
    let plan = apply(store, home.path()).await;
    assert_eq!(plan.projects.len(), 1);
    assert_eq!(plan.projects[0].change, Change::Deactivate);
    assert_eq!(plan.counts(), (0, 0, 5));
    assert!(!store.get_project("shop").await.unwrap().unwrap().active);
    assert!(
        store
            .list_jobs(Some("shop"))
            .await
            .unwrap()
            .iter()
            .all(|j| !j.active && j.next_fire.is_none())
    );
    assert!(
        store
            .list_apps(Some("shop"))
            .await
            .unwrap()
            .iter()
            .all(|a| !a.active)
    );
    assert!(store.get_project("other").await.unwrap().unwrap().active);
    assert!(!self::plan(store, home.path()).await.has_changes());
}

pub async fn an_invalid_manifest_keeps_the_last_good_state(store: &dyn Store) {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "shop", SHOP);
    apply(store, home.path()).await;
    let before = reconcile::load_stored(store).await.unwrap();
    write(
        home.path(),
        "shop",
        &SHOP.replace("30 2 * * *", "61 2 * * *"),
    );
    let plan = plan(store, home.path()).await;
    assert!(
        !plan.has_changes(),
        "an invalid project is neither changed nor deactivated: {plan:#?}"
    );
    let after = reconcile::load_stored(store).await.unwrap();
    assert_eq!(before.jobs, after.jobs);
    assert_eq!(before.projects, after.projects);
}

pub async fn removing_a_schedule_clears_the_next_fire(store: &dyn Store) {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "shop", SHOP);
    apply(store, home.path()).await;
    assert!(
        store
            .get_job("shop.sync")
            .await
            .unwrap()
            .unwrap()
            .next_fire
            .is_some()
    );
    write(
        home.path(),
        "shop",
        &SHOP.replace("    schedule: \"0 * * * *\"\n", ""),
    );
    let plan = apply(store, home.path()).await;
    assert_eq!(
        changes(&plan, "shop"),
        vec![(Kind::Job, "sync".to_owned(), "~")]
    );
    let sync = store.get_job("shop.sync").await.unwrap().unwrap();
    assert_eq!(sync.next_fire, None, "on demand only now");
    assert!(sync.active);
}

/// One `#[tokio::test]` per case per backend.
macro_rules! reconcile_tests {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = crate::store::embedded_store().await;
                    super::$case(&fixture.store).await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(fixture) = crate::store::mongo_store().await {
                        super::$case(&fixture.store).await;
                    }
                }
            )*
        }
    };
}

reconcile_tests!(
    first_apply_creates_then_nothing_changes,
    an_edit_updates_only_what_changed,
    a_removed_job_becomes_inactive_and_can_return,
    a_removed_project_is_deactivated,
    an_invalid_manifest_keeps_the_last_good_state,
    removing_a_schedule_clears_the_next_fire,
);
