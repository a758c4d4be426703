//! The self-contained HTML report of a plan: DVHs and QVH (SVG), dose-wash
//! slices with contours (PNG, embedded), prescription beside the delivered
//! dose, fluence maps, the goals table, TCP/NTCP and stage timings.

use std::fmt::Write as _;

use dosepaint_core::Volume;

use crate::evaluate::DoseKind;
use crate::outputs::{Metrics, colour};
use crate::pipeline::PlanResult;
use crate::render::{Plane, Series, dose_wash, escape, heat_map, line_chart};

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}\
th{background:#f3f3f3}td:first-child{text-align:left}.pass{color:#080;font-weight:bold}.fail{color:#b00;font-weight:bold}\
figure{display:inline-block;margin:6px;vertical-align:top}figcaption{font-size:12px;text-align:center}\
.legend span{display:inline-block;margin-right:12px;font-size:12px}";

fn css_rgb(c: [u8; 3]) -> String {
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

fn img(uri: &str, caption: &str) -> String {
    format!(
        r#"<figure><img src="{uri}" alt="{c}"><figcaption>{c}</figcaption></figure>"#,
        c = escape(caption)
    )
}

/// The voxel with the highest prescription (the centre of the painted region).
fn hottest_voxel(v: &Volume<f32>) -> [usize; 3] {
    let (n, _) =
        v.as_slice().iter().enumerate().fold(
            (0, f32::MIN),
            |best, (n, &d)| if d > best.1 { (n, d) } else { best },
        );
    v.grid().voxel_index(n)
}

/// The whole report as one HTML string.
pub fn html(r: &PlanResult) -> String {
    let m = Metrics::of(r);
    let e = &r.evaluation;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>dosepaint: {t}</title><style>{STYLE}</style></head><body><h1>dosepaint plan report: {t}</h1>",
        t = escape(&r.name)
    );
    let _ = write!(
        h,
        "<p>{} fractions; {} beams, {} beamlets; dose grid {:?} voxels of {:?} mm; prescription: {}</p>",
        r.prescription.fractions(),
        r.beams.len(),
        r.layout.len(),
        r.ct.grid().dims(),
        r.ct.grid().spacing_mm(),
        escape(&r.prescription.provenance().description)
    );

    // Summary: dose painting quality.
    let _ = write!(
        h,
        "<h2>Dose-painting quality over {}</h2>",
        escape(&e.quality_region)
    );
    h.push_str("<table><tr><th>dose</th><th>QF</th><th>within &plusmn;5 %</th><th>cold (Q &lt; 0.95)</th><th>min Q</th><th>max Q</th></tr>");
    for (label, p) in [
        ("optimized", &e.painting),
        ("delivered", &e.delivered_painting),
    ] {
        let t = &p.target;
        let _ = write!(
            h,
            "<tr><td>{label}</td><td>{:.4}</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.3}</td><td>{:.3}</td></tr>",
            t.quality_factor,
            100.0 * t.within_tolerance,
            100.0 * t.cold_fraction,
            t.min_q,
            t.max_q
        );
    }
    let _ = write!(
        h,
        "</table><p>For scale: an ideal uniform plan at the mean prescribed dose would score QF = {:.4}. \
         Over every prescribed voxel: QF {:.4} optimized, {:.4} delivered.</p>",
        e.uniform_plan_quality_factor,
        e.whole_prescription.quality_factor,
        e.whole_prescription_delivered.quality_factor
    );
    if !e.painting.levels.is_empty() {
        h.push_str("<table><tr><th>level</th><th>voxels</th><th>QF optimized</th><th>QF delivered</th></tr>");
        for (a, b) in e.painting.levels.iter().zip(&e.delivered_painting.levels) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                escape(&a.name),
                a.n_voxels,
                a.quality_factor,
                b.quality_factor
            );
        }
        h.push_str("</table>");
    }

    // Goals.
    h.push_str("<h2>Clinical goals</h2><table><tr><th>goal</th><th>optimized</th><th></th><th>delivered</th><th></th></tr>");
    let delivered: Vec<_> = m.goals_on(DoseKind::Delivered).collect();
    for (g, d) in m.goals_on(DoseKind::Optimized).zip(delivered) {
        let mark = |p: bool| {
            if p {
                "<span class=\"pass\">pass</span>"
            } else {
                "<span class=\"fail\">fail</span>"
            }
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.2}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            escape(&g.name),
            g.value,
            mark(g.passed),
            d.value,
            mark(d.passed)
        );
    }
    h.push_str("</table>");

    // TCP / NTCP.
    if !e.probabilities.is_empty() {
        h.push_str("<h2>TCP and NTCP</h2><table><tr><th>structure</th><th>model</th><th>optimized</th><th>delivered</th></tr>");
        for p in &e.probabilities {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                escape(&p.structure),
                escape(&p.model),
                p.optimized,
                p.delivered
            );
        }
        h.push_str("</table>");
    }

    // DVH and QVH.
    h.push_str("<h2>Dose-volume histograms</h2>");
    // Each structure once, in order of first appearance (curves of the
    // optimized and the delivered dose share its colour).
    let mut names: Vec<String> = Vec::new();
    for c in &e.dvhs {
        if !names.contains(&c.structure) {
            names.push(c.structure.clone());
        }
    }
    let palette: Vec<String> = (0..names.len()).map(|n| css_rgb(colour(n))).collect();
    let max_dose = e
        .dvhs
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let series: Vec<Series<'_>> = e
        .dvhs
        .iter()
        .map(|c| {
            let k = names.iter().position(|n| *n == c.structure).unwrap_or(0);
            Series {
                label: format!(
                    "{} ({})",
                    c.structure,
                    if c.dose == DoseKind::Optimized {
                        "opt"
                    } else {
                        "deliv"
                    }
                ),
                colour: &palette[k],
                dashed: c.dose == DoseKind::Delivered,
                points: c.points.clone(),
            }
        })
        .collect();
    h.push_str(&line_chart(
        "Cumulative DVH (solid: optimized, dashed: delivered)",
        "dose (Gy)",
        "volume (%)",
        &series,
        max_dose * 1.05,
        100.0,
    ));
    let qvh = |p: &dosepaint_eval::PaintingReport| -> Vec<(f64, f64)> {
        p.target
            .qvh
            .edges()
            .into_iter()
            .zip(p.target.qvh.cumulative().iter().map(|f| 100.0 * f))
            .collect()
    };
    let qvh_series = [
        Series {
            label: "optimized".into(),
            colour: "#1f77b4",
            dashed: false,
            points: qvh(&e.painting),
        },
        Series {
            label: "delivered".into(),
            colour: "#d62728",
            dashed: true,
            points: qvh(&e.delivered_painting),
        },
    ];
    h.push_str(&line_chart(
        "Quality-volume histogram (target)",
        "Q = planned / prescribed",
        "volume with Q >= q (%)",
        &qvh_series,
        1.5,
        100.0,
    ));

    // Dose-wash slices.
    h.push_str("<h2>Dose distributions</h2><div class=\"legend\">");
    let contours: Vec<(&Volume<bool>, [u8; 3])> = r
        .structures
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(n, s)| (s.mask(), colour(n)))
        .collect();
    for (n, s) in r
        .structures
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
    {
        let _ = write!(
            h,
            "<span style=\"color:{}\">&#9632; {}</span>",
            css_rgb(colour(n)),
            escape(s.name())
        );
    }
    h.push_str("</div>");
    let through = hottest_voxel(r.prescription.target_gy());
    let rx_max = r.prescription.target_gy().stats().max;
    let wash = (0.3 * rx_max, 1.1 * rx_max);
    let scale = (600 / r.ct.grid().dims()[0].max(1)).clamp(2, 6);
    let mut delivered_axial = String::new();
    for plane in [Plane::Axial, Plane::Coronal, Plane::Sagittal] {
        let delivered = dose_wash(
            &r.ct,
            &r.delivered_dose,
            &contours,
            plane,
            through,
            wash,
            scale,
        );
        let uri = delivered.to_data_uri();
        let _ = write!(
            h,
            "{}",
            img(
                &uri,
                &format!(
                    "delivered dose, {} ({:.0}-{:.0} Gy)",
                    plane.name(),
                    wash.0,
                    wash.1
                )
            )
        );
        if plane == Plane::Axial {
            delivered_axial = uri;
        }
    }
    h.push_str("<h3>Prescription beside the delivered dose</h3>");
    let rx_wash = dose_wash(
        &r.ct,
        r.prescription.target_gy(),
        &contours,
        Plane::Axial,
        through,
        wash,
        scale,
    );
    let _ = write!(h, "{}", img(&rx_wash.to_data_uri(), "prescription, axial"));
    let opt = dose_wash(
        &r.ct,
        &r.optimized_dose,
        &contours,
        Plane::Axial,
        through,
        wash,
        scale,
    );
    let _ = write!(h, "{}", img(&opt.to_data_uri(), "optimized dose, axial"));
    let _ = write!(h, "{}", img(&delivered_axial, "delivered dose, axial"));

    // Fluence maps and segments.
    h.push_str("<h2>Fluence maps and leaf sequences</h2><table><tr><th>beam</th><th>gantry</th><th>segments</th><th>MU (weight units)</th></tr>");
    for (b, f) in r.beams.iter().zip(&e.sequencing) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.0}&deg;</td><td>{}</td><td>{:.2}</td></tr>",
            escape(b.name()),
            b.gantry_deg(),
            f.segments,
            f.monitor_units
        );
    }
    h.push_str("</table>");
    for (b, beam) in r.beams.iter().enumerate() {
        let g = r.layout.beam_grids()[b];
        if let (Ok(opt), Ok(del)) = (
            r.layout.fluence_map(&r.weights, b),
            r.layout.fluence_map(&r.delivered_weights, b),
        ) {
            let _ = write!(
                h,
                "{}",
                img(
                    &heat_map(&opt, g.n_rows, g.n_cols, 8).to_data_uri(),
                    &format!("{} optimized fluence", beam.name())
                )
            );
            let _ = write!(
                h,
                "{}",
                img(
                    &heat_map(&del, g.n_rows, g.n_cols, 8).to_data_uri(),
                    &format!("{} sequenced fluence", beam.name())
                )
            );
        }
    }
    if !e.level_comparison.is_empty() {
        h.push_str("<h3>Sequencing levels</h3><table><tr><th>levels</th><th>segments</th><th>QF delivered</th><th>target D95 (Gy)</th></tr>");
        for l in &e.level_comparison {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.2}</td></tr>",
                l.levels, l.segments, l.quality_factor, l.target_d95_gy
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<p>Gamma {}&nbsp;%/{}&nbsp;mm ({}, {}&nbsp;% threshold) of the delivered against the optimized dose: {:.2}&nbsp;% pass.</p>",
        e.gamma.dose_difference_percent,
        e.gamma.distance_to_agreement_mm,
        match e.gamma.normalization {
            dosepaint_eval::Normalization::Local => "local",
            dosepaint_eval::Normalization::Global { .. } => "global",
        },
        e.gamma.lower_dose_cutoff_percent,
        100.0 * e.gamma_pass_rate
    );

    // Timings.
    h.push_str("<h2>Stage timings</h2><table><tr><th>stage</th><th>seconds</th></tr>");
    for stage in crate::Stage::ALL {
        if let Some(t) = r.timings_s.get(stage.name()) {
            let _ = write!(h, "<tr><td>{}</td><td>{:.2}</td></tr>", stage.name(), t);
        }
    }
    if let Some(t) = r.timings_s.get("total") {
        let _ = write!(h, "<tr><th>total</th><th>{t:.2}</th></tr>");
    }
    let _ = write!(
        h,
        "</table><p>Dose-influence matrix: {} rows &times; {} beamlets, {} non-zeros ({:.1} MB). Optimizer: {} iterations ({:?}).</p>",
        r.matrix.rows,
        r.matrix.beamlets,
        r.matrix.nnz,
        r.matrix.bytes as f64 / 1e6,
        r.optimization.iterations,
        r.optimization.stop_reason
    );
    h.push_str("</body></html>\n");
    h
}
