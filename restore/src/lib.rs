//! `rewind`: reads a Rewind store and rebuilds management-plane state at any
//! point in time.
