//! The classic builder: Dockerfiles parsed, variables expanded as Docker expands them,
//! `.dockerignore` applied, each step run and cached.

pub mod builder;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod expand;
pub mod ignore;
pub mod runner;
