//! TEMPORARY (not committed): stand-in until the loader lands.
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct ProjectArgs {
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
}
