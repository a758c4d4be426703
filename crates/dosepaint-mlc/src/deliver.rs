//! What a sequence delivers: the fluence map of a [`Sequence`], with
//! optional leaf transmission.
//!
//! Bixel (r, c) covers `[e_c, e_{c+1}]` along x (`e_k` from
//! [`LeafGeometry::edge_mm`]) and leaf pair r along y. A static aperture
//! exposes the fraction `max(0, min(right, e_{c+1}) - max(left, e_c)) / w` of
//! it, so a bixel counts as open exactly when both leaf tips are on or
//! beyond its edges, and a leaf tip inside a bixel opens it in proportion.
//! The covered part receives the transmission `t` of the leaves:
//!
//! `F(r, c) = sum_s w_s [o_s(r, c) + t (1 - o_s(r, c))]`.
//!
//! A sliding window is integrated exactly: between control points the
//! leaves move linearly in meterset, so the open fraction is piecewise
//! linear and its integral is a sum of trapezoids between its kinks.
//! Jaws are not modelled (transmission applies to every covered bixel of
//! the beam's grid) and neither is leakage between abutting leaf tips.

use dosepaint_core::{BeamletLayout, DeliveryKind, Sequence};

use crate::params::LeafGeometry;
use crate::{Error, Result};

/// Open length (mm) of `[e0, e1]` between tips `l` and `r`.
#[inline]
fn open_len(l: f64, r: f64, e0: f64, e1: f64) -> f64 {
    (r.min(e1) - l.max(e0)).max(0.0)
}

/// Integral over s in [0, 1] of the open length of `[e0, e1]` when the tips
/// move linearly from (l0, r0) to (l1, r1).
fn open_integral(l0: f64, l1: f64, r0: f64, r1: f64, e0: f64, e1: f64) -> f64 {
    let (dl, dr) = (l1 - l0, r1 - r0);
    let mut ks = [0.0f64; 7];
    let mut nk = 0;
    let mut push = |a: f64, b: f64| {
        // root of a + b s = 0 inside (0, 1)
        if b.abs() > 0.0 {
            let s = -a / b;
            if s > 0.0 && s < 1.0 {
                ks[nk] = s;
                nk += 1;
            }
        }
    };
    push(r0 - e1, dr);
    push(l0 - e0, dl);
    push(r0 - l0, dr - dl);
    push(r0 - e0, dr);
    push(l0 - e1, dl);
    let ks = &mut ks[..nk];
    ks.sort_by(f64::total_cmp);
    let f = |s: f64| open_len(l0 + s * dl, r0 + s * dr, e0, e1);
    let mut total = 0.0;
    let mut a = 0.0;
    let mut fa = f(0.0);
    for &b in ks.iter().chain(std::iter::once(&1.0)) {
        let fb = f(b);
        total += 0.5 * (fa + fb) * (b - a);
        a = b;
        fa = fb;
    }
    total
}

fn check_sequence(seq: &Sequence, geometry: &LeafGeometry) -> Result<()> {
    let m = geometry.grid.n_rows;
    let tol = 1e-6 * (1.0 + geometry.leaf_width_mm);
    if (seq.leaf_width_mm - geometry.leaf_width_mm).abs() > tol
        || (seq.first_leaf_center_mm - geometry.grid.y0_mm).abs() > tol
    {
        return Err(Error::shape(
            format!("leaf geometry of the sequence of beam {}", seq.beam),
            format!(
                "leaf width {} mm, first leaf at {} mm (the beam grid)",
                geometry.leaf_width_mm, geometry.grid.y0_mm
            ),
            format!(
                "leaf width {} mm, first leaf at {} mm",
                seq.leaf_width_mm, seq.first_leaf_center_mm
            ),
        ));
    }
    if !(seq.total_weight.is_finite() && seq.total_weight >= 0.0) {
        return Err(Error::invalid(
            "sequence total weight",
            format!("{} must be finite and non-negative", seq.total_weight),
        ));
    }
    for (s, a) in seq.apertures.iter().enumerate() {
        a.validate(m)
            .map_err(|e| Error::invalid(format!("segment {s}"), e.to_string()))?;
    }
    let mut prev = 0.0;
    for (k, cp) in seq.trajectory.iter().enumerate() {
        let w = cp.cumulative_meterset_weight;
        if !(w.is_finite() && (0.0..=1.0).contains(&w) && w >= prev) {
            return Err(Error::invalid(
                format!("control point {k}"),
                format!("cumulative meterset weight {w} must be in [0, 1] and non-decreasing"),
            ));
        }
        prev = w;
        if cp.left_mm.len() != m || cp.right_mm.len() != m {
            return Err(Error::shape(
                format!("control point {k} leaf banks"),
                m,
                format!("{} left, {} right", cp.left_mm.len(), cp.right_mm.len()),
            ));
        }
        for (r, (l, rt)) in cp.left_mm.iter().zip(&cp.right_mm).enumerate() {
            if !(l.is_finite() && rt.is_finite()) || l > rt {
                return Err(Error::invalid(
                    format!("control point {k}"),
                    format!("leaf pair {r}: left {l} mm, right {rt} mm"),
                ));
            }
        }
    }
    Ok(())
}

/// The fluence map (row-major over `geometry.grid`, beamlet-weight units)
/// that `sequence` delivers, with leaf transmission `transmission` (a
/// fraction in `[0, 1)`, e.g. 0.015) under the leaves.
///
/// ```
/// use dosepaint_core::{Aperture, BeamGrid, Sequence};
/// use dosepaint_mlc::{LeafGeometry, delivered_fluence};
/// let grid = BeamGrid { n_rows: 1, n_cols: 4, x0_mm: 0.0, y0_mm: 0.0 };
/// let g = LeafGeometry::new(grid, 10.0, 10.0)?; // edges at -5, 5, 15, 25, 35 mm
/// // Leaves at 5 and 20 mm: column 1 fully open, column 2 half open.
/// let a = Aperture { left_mm: vec![5.0], right_mm: vec![20.0], weight: 2.0 };
/// let seq = Sequence::step_and_shoot(0, 10.0, 0.0, 1, vec![a])?;
/// let f = delivered_fluence(&seq, &g, 0.0)?;
/// assert_eq!(f, vec![0.0, 2.0, 1.0, 0.0]);
/// let f = delivered_fluence(&seq, &g, 0.1)?;
/// assert!((f[0] - 0.2).abs() < 1e-12 && (f[2] - 1.1).abs() < 1e-12);
/// # Ok::<(), dosepaint_mlc::Error>(())
/// ```
///
/// # Errors
/// A transmission outside `[0, 1)`, a sequence whose leaf geometry or leaf
/// count differs from the grid's, or invalid leaf positions or meterset
/// weights.
pub fn delivered_fluence(
    sequence: &Sequence,
    geometry: &LeafGeometry,
    transmission: f64,
) -> Result<Vec<f64>> {
    if !(transmission.is_finite() && (0.0..1.0).contains(&transmission)) {
        return Err(Error::invalid(
            "leaf transmission",
            format!("{transmission} must be in [0, 1)"),
        ));
    }
    check_sequence(sequence, geometry)?;
    let (m, n) = (geometry.grid.n_rows, geometry.grid.n_cols);
    let bw = geometry.bixel_width_mm;
    let edges: Vec<f64> = (0..=n).map(|k| geometry.edge_mm(k)).collect();
    let mut open = vec![0.0; m * n];
    let mut total = 0.0;
    match sequence.kind {
        DeliveryKind::StepAndShoot => {
            for a in &sequence.apertures {
                total += a.weight;
                for r in 0..m {
                    let (l, rt) = (a.left_mm[r], a.right_mm[r]);
                    for c in 0..n {
                        let o = open_len(l, rt, edges[c], edges[c + 1]);
                        if o > 0.0 {
                            open[r * n + c] += a.weight * o / bw;
                        }
                    }
                }
            }
        }
        DeliveryKind::SlidingWindow => {
            for w in sequence.trajectory.windows(2) {
                let dm = (w[1].cumulative_meterset_weight - w[0].cumulative_meterset_weight)
                    * sequence.total_weight;
                if dm <= 0.0 {
                    continue;
                }
                total += dm;
                for r in 0..m {
                    let (l0, l1) = (w[0].left_mm[r], w[1].left_mm[r]);
                    let (r0, r1) = (w[0].right_mm[r], w[1].right_mm[r]);
                    let (lo, hi) = (l0.min(l1), r0.max(r1));
                    for c in 0..n {
                        if edges[c + 1] <= lo || edges[c] >= hi {
                            continue;
                        }
                        let o = open_integral(l0, l1, r0, r1, edges[c], edges[c + 1]);
                        open[r * n + c] += dm * o / bw;
                    }
                }
            }
        }
    }
    Ok(open
        .into_iter()
        .map(|o| o + transmission * (total - o))
        .collect())
}

/// The delivered fluence of a plan as beamlet weights over `layout`: for
/// every beamlet, the delivered fluence of its bixel, from the sequence whose
/// `beam` is the beamlet's beam. Bixels without a beamlet are dropped (with
/// transmission they receive fluence that no influence column can carry).
///
/// # Errors
/// A beam without a sequence or with two, or an error of
/// [`delivered_fluence`].
pub fn delivered_weights<'a>(
    sequences: impl IntoIterator<Item = &'a Sequence>,
    layout: &BeamletLayout,
    transmission: f64,
) -> Result<Vec<f64>> {
    let mut by_beam: Vec<Option<&Sequence>> = vec![None; layout.n_beams()];
    for s in sequences {
        let slot = by_beam.get_mut(s.beam).ok_or_else(|| {
            Error::invalid(
                "sequence beam",
                format!(
                    "{} does not exist (layout has {})",
                    s.beam,
                    layout.n_beams()
                ),
            )
        })?;
        if slot.is_some() {
            return Err(Error::invalid(
                "sequences",
                format!("beam {} has two sequences", s.beam),
            ));
        }
        *slot = Some(s);
    }
    let mut out = vec![0.0; layout.len()];
    for (b, s) in by_beam.iter().enumerate() {
        let s = s.ok_or_else(|| Error::invalid("sequences", format!("beam {b} has none")))?;
        let geometry = LeafGeometry::from_layout(layout, b)?;
        let map = delivered_fluence(s, &geometry, transmission).map_err(|e| e.in_beam(b))?;
        let n = geometry.grid.n_cols;
        for k in layout.beam_range(b) {
            let bl = layout.beamlet(k);
            out[k] = map[bl.row as usize * n + bl.col as usize];
        }
    }
    Ok(out)
}
