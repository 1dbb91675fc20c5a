//! The project life cycle after `coco init`: git-flow releases and installs.
//!
//! - [`version`] (pure): `X.Y.Z`, bumps, and writing the version into coco.yaml in place.
//! - [`flow`]: `coco build` (cut `release-X.Y.Z` from develop) and `coco release` (tag it
//!   once merged, push, delete the branch).
//! - [`install`]: `coco install NAME URL[@REF]` — clone or update a project in the home.

pub mod flow;
pub mod install;
pub mod version;
