//! `dosepaint`: dose-painting plans from the command line.
//!
//! ```text
//! dosepaint demo [--case head-neck|tg119|box] [--out DIR]
//! dosepaint plan SPEC.toml [--out DIR]
//! dosepaint eval --dose DOSE --mask NAME=FILE ... [--goal "PTV D95 >= 66.5 Gy"] [--prescription RX]
//! dosepaint gamma REFERENCE EVALUATED [--dd 3] [--dta 3] [--cutoff 10] [--local]
//! dosepaint lq --dose 60 --fractions 20 --alpha-beta 3 [--to-fractions 35]
//! dosepaint convert INPUT OUTPUT
//! dosepaint batch MANIFEST.csv --shard I/N
//! ```
//! Every command takes `--json` for machine-readable output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dosepaint::{
    DoseKind, Metrics, PhantomCase, Pipeline, PlanResult, PlanSpec, Progress, Stage, demo_spec,
};
use indicatif::{ProgressBar, ProgressStyle};

mod batch;
mod tools;

#[derive(Parser)]
#[command(
    name = "dosepaint",
    version,
    about = "Dose painting: functional images to a deliverable, evaluated IMRT plan"
)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on a built-in phantom.
    Demo {
        /// head-neck (FMISO dose painting by numbers + FDG boost), tg119 or box.
        #[arg(long, default_value = "head-neck")]
        case: String,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Run the pipeline on a plan spec (TOML or JSON).
    Plan {
        /// The plan spec.
        spec: PathBuf,
        /// Output directory (overrides the spec's).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// DVH statistics and clinical goals of a dose (NIfTI or RTDOSE).
    Eval {
        /// The dose (Gy).
        #[arg(long)]
        dose: PathBuf,
        /// A structure as NAME=MASK.nii[.gz] (repeat).
        #[arg(long = "mask", value_name = "NAME=FILE")]
        masks: Vec<String>,
        /// An RTSTRUCT whose ROIs are rasterised onto the dose grid.
        #[arg(long)]
        rtstruct: Option<PathBuf>,
        /// A clinical goal, e.g. "PTV D95 >= 66.5 Gy" (repeat).
        #[arg(long = "goal")]
        goals: Vec<String>,
        /// A prescription map (NIfTI, Gy) for the dose-painting quality factor.
        #[arg(long)]
        prescription: Option<PathBuf>,
        /// Fractions of the prescription.
        #[arg(long, default_value_t = 1)]
        fractions: u32,
    },
    /// 3-D gamma index between two doses.
    Gamma {
        /// Reference dose (NIfTI or RTDOSE).
        reference: PathBuf,
        /// Evaluated dose (NIfTI or RTDOSE; resampled onto the reference grid if needed).
        evaluated: PathBuf,
        /// Dose difference, percent.
        #[arg(long, default_value_t = 3.0)]
        dd: f64,
        /// Distance to agreement, mm.
        #[arg(long, default_value_t = 3.0)]
        dta: f64,
        /// Low-dose cut-off, percent of the maximum.
        #[arg(long, default_value_t = 10.0)]
        cutoff: f64,
        /// Local instead of global dose difference.
        #[arg(long)]
        local: bool,
        /// Write the gamma map here (NIfTI).
        #[arg(long)]
        map: Option<PathBuf>,
    },
    /// BED / EQD2 / iso-effect calculator.
    Lq {
        /// Total dose, Gy.
        #[arg(long)]
        dose: f64,
        /// Number of fractions.
        #[arg(long)]
        fractions: u32,
        /// alpha/beta, Gy.
        #[arg(long = "alpha-beta")]
        alpha_beta: f64,
        /// Also give the iso-effective total dose in this many fractions.
        #[arg(long = "to-fractions")]
        to_fractions: Option<u32>,
    },
    /// Convert between a DICOM series directory and NIfTI.
    Convert {
        /// A DICOM directory or a .nii/.nii.gz file.
        input: PathBuf,
        /// A .nii/.nii.gz file or a directory for a DICOM CT series.
        output: PathBuf,
    },
    /// Run one shard of a cohort manifest (CSV: case,spec[,out]).
    Batch {
        /// The manifest.
        manifest: PathBuf,
        /// Which shard, as I/N (1-based).
        #[arg(long, default_value = "1/1")]
        shard: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo { case, out } => demo(&case, out, cli.json),
        Command::Plan { spec, out } => plan(&spec, out, cli.json),
        Command::Eval {
            dose,
            masks,
            rtstruct,
            goals,
            prescription,
            fractions,
        } => tools::eval(
            &dose,
            &masks,
            rtstruct.as_deref(),
            &goals,
            prescription.as_deref(),
            fractions,
            cli.json,
        ),
        Command::Gamma {
            reference,
            evaluated,
            dd,
            dta,
            cutoff,
            local,
            map,
        } => tools::gamma(
            &reference,
            &evaluated,
            dd,
            dta,
            cutoff,
            local,
            map.as_deref(),
            cli.json,
        ),
        Command::Lq {
            dose,
            fractions,
            alpha_beta,
            to_fractions,
        } => tools::lq(dose, fractions, alpha_beta, to_fractions, cli.json),
        Command::Convert { input, output } => tools::convert(&input, &output),
        Command::Batch { manifest, shard } => batch::run(&manifest, &shard, cli.json),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Errors shown to the user: a message that says what to fix.
pub(crate) type CliResult<T = ()> = Result<T, String>;

fn demo(case: &str, out: PathBuf, json: bool) -> CliResult {
    let case: PhantomCase = case.parse().map_err(|e: dosepaint::Error| e.to_string())?;
    let mut spec = demo_spec(case);
    spec.outputs.dir = out;
    run_and_report(&spec, json)
}

fn plan(path: &Path, out: Option<PathBuf>, json: bool) -> CliResult {
    let mut spec = PlanSpec::from_file(path).map_err(|e| e.to_string())?;
    if let Some(out) = out {
        spec.outputs.dir = std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(out);
    }
    run_and_report(&spec, json)
}

/// Runs a plan with progress bars (unless `json`), then prints the summary.
pub(crate) fn run_and_report(spec: &PlanSpec, json: bool) -> CliResult {
    let result = run_with_progress(spec, !json).map_err(|e| e.to_string())?;
    let metrics = Metrics::of(&result);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&metrics).map_err(|e| e.to_string())?
        );
    } else {
        print_summary(&result, &metrics, &spec.resolve(&spec.outputs.dir));
    }
    Ok(())
}

pub(crate) fn run_with_progress(spec: &PlanSpec, show: bool) -> dosepaint::Result<PlanResult> {
    let bar = if show {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let iterations = if show {
        ProgressBar::new(spec.optimizer.max_iterations)
    } else {
        ProgressBar::hidden()
    };
    iterations.set_style(
        ProgressStyle::with_template(
            "  optimizing {bar:40} {pos}/{len} iterations, objective {msg}",
        )
        .expect("valid template"),
    );
    let result = Pipeline::new().run(spec, &mut |p| match p {
        Progress::Started(stage) => {
            bar.set_message(stage.name().replace('_', " "));
            if stage == Stage::Optimize {
                iterations.reset();
            }
        }
        Progress::Finished(stage, secs) => {
            if stage == Stage::Optimize {
                iterations.finish_and_clear();
            }
            bar.println(format!("  {:<15} {secs:7.2} s", stage.name()));
        }
        Progress::Iteration(info) => {
            iterations.set_length(info.max_iterations);
            iterations.set_position(info.iteration);
            iterations.set_message(format!("{:.4e}", info.objective));
        }
    });
    bar.finish_and_clear();
    result
}

fn print_summary(r: &PlanResult, m: &Metrics, out: &Path) {
    let e = &r.evaluation;
    println!("\n{}", r.name);
    println!(
        "  prescription   {}",
        r.prescription.provenance().description
    );
    println!(
        "  matrix         {} rows x {} beamlets, {} non-zeros ({:.1} MB)",
        m.matrix.rows,
        m.matrix.beamlets,
        m.matrix.nnz,
        m.matrix.bytes as f64 / 1e6
    );
    println!(
        "  optimizer      {} iterations ({})",
        m.optimizer_iterations, m.optimizer_stop_reason
    );
    println!(
        "\n  {:<34} {:>10} {:>10}",
        "dose painting", "optimized", "delivered"
    );
    println!(
        "  {:<34} {:>10.4} {:>10.4}",
        "quality factor", m.quality_factor, m.delivered_quality_factor
    );
    println!(
        "  {:<34} {:>9.1}% {:>9.1}%",
        "target within +-5 %",
        100.0 * m.fraction_within_5pct,
        100.0 * m.delivered_fraction_within_5pct
    );
    println!(
        "  {:<34} {:>10.4}",
        "uniform plan at mean Rx (QF)", m.uniform_plan_quality_factor
    );
    if !m.goals.is_empty() {
        println!("\n  {:<34} {:>10} {:>10}", "goal", "optimized", "delivered");
        let delivered: Vec<_> = m.goals_on(DoseKind::Delivered).collect();
        for (g, d) in m.goals_on(DoseKind::Optimized).zip(delivered) {
            let mark = |ok: bool| if ok { "pass" } else { "FAIL" };
            println!(
                "  {:<34} {:>5.2} {:<4} {:>5.2} {:<4}",
                g.name,
                g.value,
                mark(g.passed),
                d.value,
                mark(d.passed)
            );
        }
    }
    for p in &e.probabilities {
        println!(
            "  {:<34} {:>10.3} {:>10.3}",
            format!(
                "{} {}",
                p.structure,
                p.model.split(' ').next().unwrap_or("")
            ),
            p.optimized,
            p.delivered
        );
    }
    println!(
        "\n  sequencing     {} segments, {:.1} MU (weight units); gamma 3%/3mm delivered vs optimized {:.1}%",
        m.total_segments,
        m.total_monitor_units,
        100.0 * m.gamma_pass_rate
    );
    for l in &m.level_comparison {
        println!(
            "    {:>2} levels: {:>4} segments, QF {:.4}, target D95 {:.2} Gy",
            l.levels, l.segments, l.quality_factor, l.target_d95_gy
        );
    }
    println!(
        "\n  total {:.1} s; outputs in {}",
        m.timings_s.get("total").copied().unwrap_or(0.0),
        out.display()
    );
}
