//! Reconcile: compare the desired state (validated manifests) with the stored state and say
//! what must change, as data.
//!
//! [`diff`] is pure (`now` is a parameter, used only to show upcoming fire times);
//! `render` turns a [`Plan`] into the text `coco plan`/`apply` print; [`apply`] is the only
//! part that writes. `plan` and `apply` share [`diff`], so a plan shows exactly what apply does.

pub mod apply;
pub mod diff;
pub mod render;

pub use apply::{apply, load_stored};
pub use diff::{Change, FieldChange, ItemPlan, Kind, Plan, ProjectPlan, Stored, diff, diff_one};
