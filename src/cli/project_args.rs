//! The docker-compose-style options that pick and shape the project (`-f`, `-p`, ...).
//!
//! Every verb that reads the compose project flattens [`ProjectArgs`] in, so they all
//! find files, variables and profiles the same way `docker compose` does.

use crate::load::LoadOptions;
use clap::Args;
use std::io::Read;
use std::path::PathBuf;

#[derive(Args, Debug, Clone, Default)]
pub struct ProjectArgs {
    /// Compose configuration file (repeatable; `-` reads stdin) [env: COMPOSE_FILE]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name [env: COMPOSE_PROJECT_NAME]
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Alternate working directory (default: the folder of the first compose file)
    #[arg(long = "project-directory", value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Alternate environment file (repeatable; default: .env in the project directory)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Activate a profile (repeatable) [env: COMPOSE_PROFILES]
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
}

impl ProjectArgs {
    /// True when no option was given (so another set of options may apply).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.project_name.is_none()
            && self.project_directory.is_none()
            && self.env_files.is_empty()
            && self.profiles.is_empty()
    }

    /// Loader options for these arguments, this process's directory and environment.
    pub fn load_options(&self) -> std::io::Result<LoadOptions> {
        let mut opts = LoadOptions::from_process();
        opts.files = self.files.clone();
        opts.project_name = self.project_name.clone();
        opts.project_directory = self.project_directory.clone();
        opts.env_files = self.env_files.clone();
        opts.profiles = self.profiles.clone();
        if self.files.iter().any(|f| f.as_os_str() == "-") {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            opts.stdin = Some(text);
        }
        Ok(opts)
    }
}
