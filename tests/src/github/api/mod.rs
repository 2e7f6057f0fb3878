//! The REST endpoints, one file per area of GitHub's API (and `new_app`, the two web pages of
//! the manifest flow). Handlers are synchronous functions over
//! the shared state: they take the lock, read or change the state, render the answer and return;
//! none of them holds the lock across an `.await` (the only asynchronous work, a redelivery,
//! is spawned).

pub(crate) mod app;
pub(crate) mod checks;
pub(crate) mod deployments;
pub(crate) mod issues;
pub(crate) mod new_app;
pub(crate) mod oauth;
pub(crate) mod orgs;
pub(crate) mod repos;
