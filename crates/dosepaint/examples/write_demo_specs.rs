//! Writes the built-in demo plans as TOML specs into `examples/` at the
//! workspace root, so users can start their own plan from one:
//!
//! `cargo run -p dosepaint --example write_demo_specs`
//!
//! The test `demo_specs_in_examples_match_the_built_in_ones` keeps the files
//! and the code in step.

use std::path::Path;

use dosepaint::{PhantomCase, demo_spec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (case, file) in [
        (PhantomCase::HeadNeck, "head_neck.toml"),
        (PhantomCase::Tg119, "tg119.toml"),
        (PhantomCase::Box, "water_box.toml"),
    ] {
        let toml = demo_spec(case).to_toml()?;
        let header = format!(
            "# dosepaint plan spec: the built-in `dosepaint demo --case {}` plan.\n\
             # Run it with `dosepaint plan examples/{file}`; edit freely.\n\n",
            match case {
                PhantomCase::HeadNeck => "head-neck",
                PhantomCase::Tg119 => "tg119",
                PhantomCase::Box => "box",
            }
        );
        std::fs::write(dir.join(file), header + &toml)?;
        println!("wrote examples/{file}");
    }
    Ok(())
}
