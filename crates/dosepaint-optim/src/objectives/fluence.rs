//! Objectives on the beamlet weights: fluence smoothness.

use dosepaint_core::BeamletLayout;
use serde::{Deserialize, Serialize};

use crate::objective::FluenceObjective;
use crate::{Error, Result};

/// Fluence smoothness: the mean squared difference between neighbouring
/// beamlets of the same beam (adjacent along a leaf-pair row or across rows,
/// from [`BeamletLayout::neighbour_pairs`]):
///
/// `f = (1/P) sum_{(a, b)} (w_a - w_b)^2` over the `P` pairs.
///
/// Smooth fluence maps sequence into fewer MLC segments. The term is
/// quadratic, so plans that use it can still be solved exactly.
///
/// ```
/// use dosepaint_core::{BeamGrid, BeamletLayout};
/// use dosepaint_optim::{FluenceObjective, FluenceSmoothness};
/// let layout = BeamletLayout::full(
///     vec![BeamGrid { n_rows: 1, n_cols: 3, x0_mm: 0.0, y0_mm: 0.0 }], 5.0, 5.0)?;
/// let smooth = FluenceSmoothness::new(&layout)?;
/// let mut grad = vec![0.0; 3];
/// // pairs (0,1), (1,2): (1 + 4) / 2
/// let f = smooth.value_and_gradient(&[1.0, 2.0, 0.0], 1.0, &mut grad);
/// assert!((f - 2.5).abs() < 1e-12);
/// # Ok::<(), dosepaint_optim::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FluenceSmoothness {
    name: String,
    pairs: Vec<(u32, u32)>,
    n_beamlets: usize,
}

impl FluenceSmoothness {
    /// Smoothness over all neighbouring pairs of the layout.
    ///
    /// # Errors
    /// A layout without any pair of neighbouring beamlets.
    pub fn new(layout: &BeamletLayout) -> Result<Self> {
        let pairs: Vec<(u32, u32)> = layout
            .neighbour_pairs()
            .into_iter()
            .map(|(a, b)| (a as u32, b as u32))
            .collect();
        if pairs.is_empty() {
            return Err(Error::Empty {
                what: "fluence smoothness".into(),
                reason: "the beamlet layout has no pair of neighbouring beamlets".into(),
            });
        }
        Ok(Self {
            name: "fluence smoothness".into(),
            pairs,
            n_beamlets: layout.len(),
        })
    }

    /// The neighbour pairs `(a, b)`, `a < b`.
    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.pairs
    }
}

impl FluenceObjective for FluenceSmoothness {
    fn name(&self) -> &str {
        &self.name
    }

    fn value_and_gradient(&self, w: &[f64], weight: f64, grad: &mut [f64]) -> f64 {
        let inv_p = 1.0 / self.pairs.len() as f64;
        let s = 2.0 * weight * inv_p;
        let mut sum = 0.0;
        for &(a, b) in &self.pairs {
            let e = w[a as usize] - w[b as usize];
            sum += e * e;
            grad[a as usize] += s * e;
            grad[b as usize] -= s * e;
        }
        sum * inv_p
    }

    fn for_each_hessian_entry(&self, weight: f64, add: &mut dyn FnMut(usize, usize, f64)) -> bool {
        let s = 2.0 * weight / self.pairs.len() as f64;
        for &(a, b) in &self.pairs {
            let (a, b) = (a as usize, b as usize);
            add(a, a, s);
            add(b, b, s);
            add(a, b, -s);
            add(b, a, -s);
        }
        true
    }

    fn validate(&self, n_beamlets: usize) -> Result<()> {
        if n_beamlets != self.n_beamlets {
            return Err(Error::length(
                "beamlets of the fluence-smoothness layout vs the matrix",
                n_beamlets,
                self.n_beamlets,
            ));
        }
        if let Some(&(a, b)) = self
            .pairs
            .iter()
            .find(|(a, b)| *a as usize >= n_beamlets || *b as usize >= n_beamlets || a == b)
        {
            return Err(Error::invalid(
                "fluence-smoothness pair",
                format!("({a}, {b}) is not a pair of distinct beamlets below {n_beamlets}"),
            ));
        }
        Ok(())
    }
}
