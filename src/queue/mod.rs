//! The durable request queue: the model, typed parameters, the in-memory state with its
//! checked transitions, and the store that persists every change to Delta Lake.

pub mod compact;
pub mod ids;
pub mod ingest;
pub mod lease;
pub mod lookup;
pub mod model;
pub mod params;
pub mod retention;
pub mod state;

pub use model::{Actor, Event, Priority, Request, RequestType, Status};
pub use state::{Enqueued, NewRequest, QueueError, QueueState, RetryPolicy, StatusCounts};
pub mod rows;
pub mod service;
pub mod store;
pub mod upkeep;
