//! Hard constraints, enforced by an augmented-Lagrangian outer loop.
//!
//! A constraint `c(x) <= 0` enters the inner objective as the
//! Powell-Hestenes-Rockafellar term
//! `psi(c) = (1 / 2 mu) [max(0, lambda + mu c)^2 - lambda^2]`,
//! whose gradient is `max(0, lambda + mu c) grad c`; after each inner solve
//! the multiplier is updated, `lambda <- max(0, lambda + mu c)`, and `mu` grows
//! when the violation did not shrink enough (Nocedal & Wright, Numerical
//! Optimization, 2nd ed., sections 17.3-17.4).
//!
//! Voxel-wise dose limits (`d_i <= L_i`, `d_i >= L_i`) carry one multiplier
//! per voxel, so the limit holds in every voxel at convergence rather than
//! for a smoothed maximum.

use dosepaint_core::{DoseInfluence, Structure};
use serde::{Deserialize, Serialize};

use crate::error::{non_negative, positive};
use crate::objective::{Objective, structure_rows};
use crate::objectives::physical::{DoseVolume, MeanDose, Sense};
use crate::{Error, Result};

/// A hard constraint on the dose.
#[derive(Debug)]
pub struct Constraint {
    name: String,
    kind: Kind,
    /// Tolerance (in the units of the reported value) within which the
    /// constraint counts as met.
    tolerance: f64,
}

#[derive(Debug)]
enum Kind {
    /// `sense (d_i - L_i) <= 0` in every row.
    Voxel {
        rows: Vec<u32>,
        limit_gy: Vec<f64>,
        sense: Sense,
    },
    /// `D_v >= / <= X`, through the Wu-Mohan DVH penalty `P = 0`.
    DoseAtVolume {
        /// Its rows are the constraint's.
        penalty: DoseVolume,
        volume_fraction: f64,
        dose_gy: f64,
        sense: Sense,
    },
    /// `sense (m(d) - limit) <= 0` for a scalar measure `m` (its
    /// `Objective::value`).
    Measure {
        measure: Box<dyn Objective>,
        sense: Sense,
        limit: f64,
        scale: f64,
    },
}

/// How a constraint ended up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstraintReport {
    /// The constraint's name.
    pub name: String,
    /// The constrained quantity at the returned weights (for voxel limits:
    /// the maximum, or minimum, of `d_i` over the voxels when the limit is
    /// uniform, otherwise the worst `d_i - L_i`).
    pub value: f64,
    /// The limit it is held to.
    pub limit: f64,
    /// Which side of the limit is allowed.
    pub sense: Sense,
    /// Whether the constraint is met within its tolerance.
    pub met: bool,
    /// Largest violation (>= 0, in the units of `value`).
    pub violation: f64,
}

/// Augmented-Lagrangian state of one constraint.
#[derive(Debug, Clone, Default)]
pub(crate) struct Multipliers {
    pub(crate) lambda: Vec<f64>,
    pub(crate) mu: f64,
}

impl Constraint {
    /// Every voxel of `structure` at or below `limit_gy` (e.g. cord max dose).
    ///
    /// # Errors
    /// Empty structure, grid mismatch, a negative or non-finite limit.
    pub fn max_dose(
        influence: &DoseInfluence,
        structure: &Structure,
        limit_gy: f64,
    ) -> Result<Self> {
        Self::voxel(influence, structure, limit_gy, Sense::AtMost)
    }

    /// Every voxel of `structure` at or above `limit_gy`.
    ///
    /// # Errors
    /// As [`Constraint::max_dose`].
    pub fn min_dose(
        influence: &DoseInfluence,
        structure: &Structure,
        limit_gy: f64,
    ) -> Result<Self> {
        Self::voxel(influence, structure, limit_gy, Sense::AtLeast)
    }

    fn voxel(
        influence: &DoseInfluence,
        structure: &Structure,
        limit_gy: f64,
        sense: Sense,
    ) -> Result<Self> {
        non_negative("constraint dose limit (Gy)", limit_gy)?;
        let rows = structure_rows(influence, structure)?;
        let n = rows.len();
        Ok(Self {
            name: format!(
                "{} {} {limit_gy} Gy",
                structure.name(),
                if sense == Sense::AtMost {
                    "max <="
                } else {
                    "min >="
                }
            ),
            kind: Kind::Voxel {
                rows,
                limit_gy: vec![limit_gy; n],
                sense,
            },
            tolerance: (0.01 * limit_gy).max(0.05),
        })
    }

    /// Voxel-wise limits on explicit rows: `d_i <= limit_gy[k]` (or `>=`).
    ///
    /// # Errors
    /// Empty rows, lengths that differ, a negative or non-finite limit.
    pub fn voxel_limits(
        name: impl Into<String>,
        rows: Vec<u32>,
        limit_gy: Vec<f64>,
        sense: Sense,
    ) -> Result<Self> {
        let name = name.into();
        if rows.is_empty() {
            return Err(Error::Empty {
                what: format!("constraint \"{name}\""),
                reason: "it covers no row".into(),
            });
        }
        if rows.len() != limit_gy.len() {
            return Err(Error::length(
                format!("limits of constraint \"{name}\""),
                rows.len(),
                limit_gy.len(),
            ));
        }
        for &l in &limit_gy {
            non_negative("constraint dose limit (Gy)", l)?;
        }
        let mean = limit_gy.iter().sum::<f64>() / limit_gy.len() as f64;
        Ok(Self {
            name,
            kind: Kind::Voxel {
                rows,
                limit_gy,
                sense,
            },
            tolerance: (0.01 * mean).max(0.05),
        })
    }

    /// A dose-volume constraint on `structure`: the dose `D_v` received by
    /// the hottest fraction `volume_fraction` of the volume is at least
    /// (`Sense::AtLeast`; e.g. target D95 >= 50 Gy) or at most
    /// (`Sense::AtMost`; e.g. D10 <= 25 Gy) `dose_gy`.
    ///
    /// Enforced through the Wu-Mohan penalty of [`DoseVolume`] (zero exactly
    /// when the constraint holds); reported with the exact `D_v`.
    ///
    /// # Errors
    /// Empty structure, grid mismatch, a negative dose or a fraction outside
    /// `(0, 1]`.
    pub fn dose_at_volume(
        influence: &DoseInfluence,
        structure: &Structure,
        volume_fraction: f64,
        sense: Sense,
        dose_gy: f64,
    ) -> Result<Self> {
        if !(volume_fraction > 0.0 && volume_fraction <= 1.0) {
            return Err(Error::invalid(
                "constraint volume fraction",
                format!("{volume_fraction} must lie in (0, 1]"),
            ));
        }
        let rows = structure_rows(influence, structure)?;
        // D_v >= X  <=>  V(X) >= v;  D_v <= X  <=>  V(X) <= v.
        let penalty = DoseVolume::from_rows(
            "dvh constraint penalty",
            rows,
            sense,
            dose_gy,
            volume_fraction,
        )?;
        Ok(Self {
            name: format!(
                "{} D{}% {} {dose_gy} Gy",
                structure.name(),
                volume_fraction * 100.0,
                sense.symbol()
            ),
            kind: Kind::DoseAtVolume {
                penalty,
                volume_fraction,
                dose_gy,
                sense,
            },
            tolerance: (0.01 * dose_gy).max(0.05),
        })
    }

    /// Mean dose of `structure` at most / at least `limit_gy`.
    ///
    /// # Errors
    /// Empty structure, grid mismatch, a negative or non-finite limit.
    pub fn mean_dose(
        influence: &DoseInfluence,
        structure: &Structure,
        sense: Sense,
        limit_gy: f64,
    ) -> Result<Self> {
        non_negative("mean-dose limit (Gy)", limit_gy)?;
        let rows = structure_rows(influence, structure)?;
        // The measure is the mean itself: an AtMost mean objective with limit 0
        // is mean^2, so use a dedicated measure instead.
        let name = format!("{} mean {} {limit_gy} Gy", structure.name(), sense.symbol());
        Self::measure(
            name,
            Box::new(MeanMeasure(MeanDose::from_rows(
                "mean",
                rows,
                Sense::AtMost,
                0.0,
            )?)),
            sense,
            limit_gy,
        )
    }

    /// A constraint on any scalar measure: `measure.value(dose)` (the
    /// objective's value, e.g. the NTCP of an [`Ntcp`](crate::Ntcp)) at most
    /// / at least `limit`. The measure's gradient drives the multiplier term.
    /// Objectives that are penalties measure their penalty: a
    /// [`GeudLimit`](crate::GeudLimit) with [`Sense::AtMost`] and limit 0
    /// measures `gEUD^2`.
    ///
    /// # Errors
    /// A non-finite limit.
    pub fn measure(
        name: impl Into<String>,
        measure: Box<dyn Objective>,
        sense: Sense,
        limit: f64,
    ) -> Result<Self> {
        if !limit.is_finite() {
            return Err(Error::invalid(
                "constraint limit",
                format!("{limit} is not finite"),
            ));
        }
        let scale = limit.abs().max(1e-3);
        Ok(Self {
            name: name.into(),
            kind: Kind::Measure {
                measure,
                sense,
                limit,
                scale,
            },
            tolerance: 0.01 * scale,
        })
    }

    /// Sets the tolerance within which the constraint counts as met (in the
    /// units of its reported value; default 1 % of the limit, at least
    /// 0.05 Gy for dose limits).
    ///
    /// # Errors
    /// A non-positive or non-finite tolerance.
    pub fn with_tolerance(mut self, tolerance: f64) -> Result<Self> {
        self.tolerance = positive("constraint tolerance", tolerance)?;
        Ok(self)
    }

    /// The same constraint under another name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The constraint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks rows against the matrix.
    pub(crate) fn validate(&self, n_rows: usize) -> Result<()> {
        match &self.kind {
            Kind::Voxel { rows, .. } => crate::objective::check_rows(&self.name, rows, n_rows),
            Kind::DoseAtVolume { penalty, .. } => {
                crate::objective::check_rows(&self.name, penalty.rows(), n_rows)
            }
            Kind::Measure { measure, .. } => measure.validate(n_rows),
        }
    }

    pub(crate) fn initial_multipliers(&self, mu: f64) -> Multipliers {
        let n = match &self.kind {
            Kind::Voxel { rows, .. } => rows.len(),
            _ => 1,
        };
        Multipliers {
            lambda: vec![0.0; n],
            mu,
        }
    }

    /// Scaled constraint values `c` (> 0 violated) for the scalar kinds.
    fn scalar_c(&self, dose: &[f64]) -> f64 {
        match &self.kind {
            Kind::Voxel { .. } => unreachable!("voxel constraints are not scalar"),
            Kind::DoseAtVolume {
                penalty, dose_gy, ..
            } => penalty.value(dose) / dose_gy.max(1.0).powi(2),
            Kind::Measure {
                measure,
                sense,
                limit,
                scale,
            } => {
                let m = measure.value(dose);
                sense.excess(m, *limit) / scale
            }
        }
    }

    /// Adds the augmented-Lagrangian term's gradient into `grad_rows` and
    /// returns its value.
    pub(crate) fn lagrangian_term(
        &self,
        m: &Multipliers,
        dose: &[f64],
        grad_rows: &mut [f64],
    ) -> f64 {
        match &self.kind {
            Kind::Voxel {
                rows,
                limit_gy,
                sense,
            } => {
                let sign = sense.sign();
                let inv_n = 1.0 / rows.len() as f64;
                let mut sum = 0.0;
                for ((&r, &l), &lam) in rows.iter().zip(limit_gy).zip(&m.lambda) {
                    let c = sign * (dose[r as usize] - l);
                    let t = lam + m.mu * c;
                    if t > 0.0 {
                        sum += t * t - lam * lam;
                        grad_rows[r as usize] += inv_n * t * sign;
                    } else {
                        sum -= lam * lam;
                    }
                }
                sum * inv_n / (2.0 * m.mu)
            }
            Kind::DoseAtVolume {
                penalty, dose_gy, ..
            } => {
                let lam = m.lambda[0];
                let s = dose_gy.max(1.0).powi(2);
                let mut t = lam;
                penalty.value_then_gradient(dose, grad_rows, |p| {
                    t = lam + m.mu * (p / s);
                    if t > 0.0 { t / s } else { 0.0 }
                });
                if t > 0.0 {
                    (t * t - lam * lam) / (2.0 * m.mu)
                } else {
                    -lam * lam / (2.0 * m.mu)
                }
            }
            Kind::Measure {
                measure,
                sense,
                scale,
                ..
            } => {
                let lam = m.lambda[0];
                let c = self.scalar_c(dose);
                let t = lam + m.mu * c;
                if t > 0.0 {
                    let sign = sense.sign();
                    measure.value_and_gradient(dose, t * sign / scale, grad_rows);
                    (t * t - lam * lam) / (2.0 * m.mu)
                } else {
                    -lam * lam / (2.0 * m.mu)
                }
            }
        }
    }

    /// Multiplier update after an inner solve; returns the scaled violation
    /// `max(0, c)` (max over voxels for voxel limits).
    pub(crate) fn update_multipliers(&self, m: &mut Multipliers, dose: &[f64]) -> f64 {
        if let Kind::Voxel {
            rows,
            limit_gy,
            sense,
        } = &self.kind
        {
            let sign = sense.sign();
            let mut worst = 0.0f64;
            for ((&r, &l), lam) in rows.iter().zip(limit_gy).zip(m.lambda.iter_mut()) {
                let c = sign * (dose[r as usize] - l);
                worst = worst.max(c / l.max(1.0));
                *lam = (*lam + m.mu * c).max(0.0);
            }
            worst
        } else {
            let c = self.scalar_c(dose);
            m.lambda[0] = (m.lambda[0] + m.mu * c).max(0.0);
            c.max(0.0)
        }
    }

    /// The constrained quantity at `dose`, and whether it is met.
    pub(crate) fn report(&self, dose: &[f64]) -> ConstraintReport {
        let (value, limit, sense) = match &self.kind {
            Kind::Voxel {
                rows,
                limit_gy,
                sense,
            } => {
                let uniform = limit_gy.windows(2).all(|w| w[0].total_cmp(&w[1]).is_eq());
                let sign = sense.sign();
                if uniform {
                    let ext = rows
                        .iter()
                        .map(|&r| sign * dose[r as usize])
                        .fold(f64::NEG_INFINITY, f64::max)
                        * sign;
                    (ext, limit_gy[0], *sense)
                } else {
                    let worst = rows
                        .iter()
                        .zip(limit_gy)
                        .map(|(&r, &l)| sign * (dose[r as usize] - l))
                        .fold(f64::NEG_INFINITY, f64::max);
                    (worst, 0.0, Sense::AtMost)
                }
            }
            Kind::DoseAtVolume {
                penalty,
                volume_fraction,
                dose_gy,
                sense,
            } => (
                dose_at_volume(penalty.rows(), dose, *volume_fraction),
                *dose_gy,
                *sense,
            ),
            Kind::Measure {
                measure,
                sense,
                limit,
                ..
            } => (measure.value(dose), *limit, *sense),
        };
        let violation = sense.excess(value, limit).max(0.0);
        ConstraintReport {
            name: self.name.clone(),
            value,
            limit,
            sense,
            met: violation <= self.tolerance,
            violation,
        }
    }
}

/// The minimum dose received by the hottest fraction `v` of the rows
/// (`D_v`, e.g. D95 for `v = 0.95`).
pub(crate) fn dose_at_volume(rows: &[u32], dose: &[f64], v: f64) -> f64 {
    let mut d: Vec<f64> = rows.iter().map(|&r| dose[r as usize]).collect();
    let n = d.len();
    // The ceil(v N) hottest voxels receive at least D_v.
    let k = ((v * n as f64) - 1e-9).ceil().max(1.0) as usize;
    let idx = n - k.min(n);
    let (_, x, _) = d.select_nth_unstable_by(idx, f64::total_cmp);
    *x
}

/// The mean dose as a measure (its value is the mean, not a penalty).
#[derive(Debug)]
struct MeanMeasure(MeanDose);

impl Objective for MeanMeasure {
    fn name(&self) -> &'static str {
        "mean dose"
    }

    fn rows(&self) -> &[u32] {
        self.0.rows()
    }

    fn value_and_gradient(&self, dose: &[f64], weight: f64, grad: &mut [f64]) -> f64 {
        let rows = self.0.rows();
        let s = weight / rows.len() as f64;
        for &r in rows {
            grad[r as usize] += s;
        }
        self.0.mean_gy(dose)
    }

    fn value(&self, dose: &[f64]) -> f64 {
        self.0.mean_gy(dose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ntcp;
    use crate::objectives::biological::NtcpModel;
    use dosepaint_radiobio::Lkb;

    /// `D_v` of the doses 1, 2, ..., 20 Gy: the `ceil(v N)` hottest voxels
    /// receive at least `D_v`, so D95 = 2 Gy (19 voxels), D50 = 11 Gy
    /// (10 voxels), D5 = 20 Gy (1 voxel) and D100 = 1 Gy.
    #[test]
    fn dose_at_volume_closed_form() {
        let dose: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let rows: Vec<u32> = (0..20).collect();
        for (v, expected) in [(0.95, 2.0), (0.5, 11.0), (0.05, 20.0), (1.0, 1.0)] {
            let d = dose_at_volume(&rows, &dose, v);
            assert!((d - expected).abs() < 1e-12, "D{}: {d}", v * 100.0);
        }
    }

    /// The Powell-Hestenes-Rockafellar term of voxel limits, by hand:
    /// `d <= 10` on two rows with `lambda = (0, 2)`, `mu = 4` at doses 12 and
    /// 9: `c = (2, -1)`, `lambda + mu c = (8, -2)`, so the term is
    /// `(1/N) (1 / 2 mu) [(8^2 - 0) + (0 - 2^2)] = 60 / 16` and its gradient
    /// `(1/N) max(0, lambda + mu c) = (4, 0)`.
    #[test]
    fn voxel_term_closed_form_and_multiplier_update() {
        let c = Constraint::voxel_limits("cap", vec![0, 1], vec![10.0; 2], Sense::AtMost).unwrap();
        let mut m = Multipliers {
            lambda: vec![0.0, 2.0],
            mu: 4.0,
        };
        let dose = [12.0, 9.0];
        let mut g = [0.0; 2];
        let v = c.lagrangian_term(&m, &dose, &mut g);
        assert!((v - 3.75).abs() < 1e-15, "{v}");
        assert!((g[0] - 4.0).abs() < 1e-15 && g[1].abs() < 1e-15, "{g:?}");
        // lambda <- max(0, lambda + mu c) = (8, 0); worst scaled violation 2 / 10.
        let worst = c.update_multipliers(&mut m, &dose);
        assert!((worst - 0.2).abs() < 1e-15);
        assert_eq!(m.lambda, vec![8.0, 0.0]);
    }

    /// The gradient of every kind of term against central differences, with
    /// multipliers both zero and positive (doses kept a few Gy away from
    /// every kink: the thresholds, the DVH band ends, the ranking).
    #[test]
    fn term_gradients_match_finite_differences() {
        let rows: Vec<u32> = (0..6).collect();
        let dose = [61.3, 55.2, 48.9, 66.7, 52.4, 58.1];
        let ntcp = Ntcp::from_rows(
            "ntcp",
            rows.clone(),
            NtcpModel::Lkb(Lkb::new(39.9, 0.4, 1.0).unwrap()),
        );
        let constraints = [
            Constraint::voxel_limits("max", rows.clone(), vec![57.0; 6], Sense::AtMost).unwrap(),
            Constraint::voxel_limits("min", rows.clone(), vec![54.0; 6], Sense::AtLeast).unwrap(),
            dvh(&rows, 0.9, Sense::AtLeast, 57.0),
            dvh(&rows, 0.3, Sense::AtMost, 50.0),
            Constraint::measure("ntcp", Box::new(ntcp), Sense::AtMost, 0.2).unwrap(),
        ];
        for c in &constraints {
            for lambda in [0.0, 0.7] {
                let mut m = c.initial_multipliers(3.0);
                m.lambda.fill(lambda);
                let mut g = [0.0; 6];
                c.lagrangian_term(&m, &dose, &mut g);
                let h = 1e-6;
                let mut x = dose;
                let mut scratch = [0.0; 6];
                for i in 0..6 {
                    x[i] = dose[i] + h;
                    let fp = c.lagrangian_term(&m, &x, &mut scratch);
                    x[i] = dose[i] - h;
                    let fm = c.lagrangian_term(&m, &x, &mut scratch);
                    x[i] = dose[i];
                    let fd = (fp - fm) / (2.0 * h);
                    assert!(
                        (fd - g[i]).abs() <= 1e-6 * fd.abs().max(1.0),
                        "{} (lambda {lambda}), row {i}: {} vs {fd}",
                        c.name(),
                        g[i]
                    );
                }
            }
        }
    }

    fn dvh(rows: &[u32], v: f64, sense: Sense, dose_gy: f64) -> Constraint {
        let penalty = DoseVolume::from_rows("p", rows.to_vec(), sense, dose_gy, v).unwrap();
        Constraint {
            name: format!("D{v} {} {dose_gy}", sense.symbol()),
            kind: Kind::DoseAtVolume {
                penalty,
                volume_fraction: v,
                dose_gy,
                sense,
            },
            tolerance: 0.05,
        }
    }

    /// The DVH term ranks the doses once; it must give the same bits as the
    /// value followed by the weighted gradient.
    #[test]
    fn dvh_value_then_gradient_is_value_and_gradient() {
        let rows: Vec<u32> = (0..6).collect();
        let dose = [61.3, 55.2, 48.9, 66.7, 52.4, 58.1];
        for (sense, d, v) in [(Sense::AtLeast, 57.0, 0.9), (Sense::AtMost, 50.0, 0.3)] {
            let p = DoseVolume::from_rows("p", rows.clone(), sense, d, v).unwrap();
            let mut g1 = [0.0; 6];
            let mut g2 = [0.0; 6];
            let value = p.value_then_gradient(&dose, &mut g1, |f| 2.5 * f);
            assert!(value > 0.0, "the test needs a violated constraint");
            assert_eq!(value.to_bits(), p.value(&dose).to_bits());
            p.value_and_gradient(&dose, 2.5 * value, &mut g2);
            assert_eq!(g1.map(f64::to_bits), g2.map(f64::to_bits));
            // A weight of zero adds nothing.
            let mut g3 = [0.0; 6];
            p.value_then_gradient(&dose, &mut g3, |_| 0.0);
            assert!(g3.iter().all(|v| v.to_bits() == 0), "{g3:?}");
        }
    }

    /// Impossible constraints are refused, naming what is wrong.
    #[test]
    fn bad_constraints_are_named_errors() {
        assert!(matches!(
            Constraint::voxel_limits("c", Vec::new(), Vec::new(), Sense::AtMost),
            Err(Error::Empty { .. })
        ));
        assert!(matches!(
            Constraint::voxel_limits("c", vec![0, 1], vec![1.0], Sense::AtMost),
            Err(Error::LengthMismatch {
                expected: 2,
                found: 1,
                ..
            })
        ));
        for bad in [-1.0, f64::NAN] {
            assert!(matches!(
                Constraint::voxel_limits("c", vec![0], vec![bad], Sense::AtMost),
                Err(Error::InvalidParameter { .. })
            ));
        }
        let mean = MeanDose::from_rows("m", vec![0], Sense::AtMost, 1.0).unwrap();
        assert!(matches!(
            Constraint::measure("c", Box::new(mean), Sense::AtMost, f64::INFINITY),
            Err(Error::InvalidParameter { .. })
        ));
        let c = Constraint::voxel_limits("c", vec![0, 5], vec![1.0; 2], Sense::AtMost).unwrap();
        assert!(matches!(c.validate(3), Err(Error::InvalidParameter { .. })));
        assert!(matches!(
            c.with_tolerance(0.0),
            Err(Error::InvalidParameter { .. })
        ));
    }
}
