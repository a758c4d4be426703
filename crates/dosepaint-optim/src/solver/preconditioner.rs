//! Preconditioners: the initial inverse-Hessian estimate of the solvers.

use crate::{Error, Result};

/// An approximation `P` of the inverse Hessian, symmetric positive definite,
/// used as the initial L-BFGS matrix (`H0 = gamma P`) or to scale the
/// projected-gradient step.
///
/// * [`Preconditioner::diagonal`]: `P = diag(p)` (Jacobi).
/// * [`Preconditioner::blocks`]: `P` is block diagonal, each block the
///   inverse of a dense symmetric positive-definite matrix (e.g. the
///   Gauss-Newton Hessian of one beam's beamlets), applied through its
///   Cholesky factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Preconditioner {
    /// `P_jj` (the diagonal of `P`'s inverse, inverted, for blocks: a
    /// Jacobi fallback used on the binding set).
    diagonal: Vec<f64>,
    blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
struct Block {
    start: usize,
    len: usize,
    /// Lower Cholesky factor, row-major `len x len`.
    chol: Vec<f64>,
}

impl Preconditioner {
    /// `P = diag(p)`, every entry positive and finite.
    ///
    /// # Errors
    /// A non-positive or non-finite entry (its index is named).
    pub fn diagonal(p: Vec<f64>) -> Result<Self> {
        if let Some(j) = p.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(Error::invalid(
                "preconditioner",
                format!("entry {j} = {} must be positive and finite", p[j]),
            ));
        }
        Ok(Self {
            diagonal: p,
            blocks: Vec::new(),
        })
    }

    /// Block-diagonal `P` over `n` variables: each `(start, matrix)` is a
    /// dense row-major `len x len` symmetric positive-definite matrix `B`
    /// for variables `start..start + len`, and `P` applies `B^-1` there.
    /// Variables in no block get `1 / B_jj`-free identity scaling.
    ///
    /// # Errors
    /// Overlapping or out-of-range blocks, a matrix that is not square, or
    /// one that is not positive definite.
    pub fn blocks(n: usize, blocks: Vec<(usize, Vec<f64>)>) -> Result<Self> {
        let mut diagonal = vec![1.0; n];
        let mut out = Vec::with_capacity(blocks.len());
        let mut covered = vec![false; n];
        for (start, mut m) in blocks {
            let len = (m.len() as f64).sqrt().round() as usize;
            if len * len != m.len() || start + len > n {
                return Err(Error::invalid(
                    "preconditioner block",
                    format!(
                        "block at {start} with {} entries is not square or exceeds {n} variables",
                        m.len()
                    ),
                ));
            }
            for j in start..start + len {
                if std::mem::replace(&mut covered[j], true) {
                    return Err(Error::invalid(
                        "preconditioner block",
                        format!("variable {j} is in two blocks"),
                    ));
                }
                diagonal[j] = 1.0 / m[(j - start) * len + (j - start)];
            }
            cholesky_in_place(&mut m, len).map_err(|k| {
                Error::invalid(
                    "preconditioner block",
                    format!("the block at variable {start} is not positive definite (pivot {k})"),
                )
            })?;
            out.push(Block {
                start,
                len,
                chol: m,
            });
        }
        if let Some(j) = diagonal.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(Error::invalid(
                "preconditioner",
                format!("variable {j} has a non-positive diagonal"),
            ));
        }
        Ok(Self {
            diagonal,
            blocks: out,
        })
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.diagonal.len()
    }

    /// Whether it covers no variable.
    pub fn is_empty(&self) -> bool {
        self.diagonal.is_empty()
    }

    /// A diagonal approximation of `P` (exact for a diagonal
    /// preconditioner; the inverse of each block's diagonal otherwise).
    pub fn diagonal_entry(&self, j: usize) -> f64 {
        self.diagonal[j]
    }

    /// `P_jj` of an optional preconditioner (1 without one).
    pub(crate) fn diagonal_or_one(preconditioner: Option<&Self>, j: usize) -> f64 {
        preconditioner.map_or(1.0, |p| p.diagonal_entry(j))
    }

    /// `x <- P x`.
    pub fn apply(&self, x: &mut [f64]) {
        if self.blocks.is_empty() {
            for (v, p) in x.iter_mut().zip(&self.diagonal) {
                *v *= p;
            }
            return;
        }
        let mut covered_to = 0;
        for b in &self.blocks {
            for j in covered_to..b.start {
                x[j] *= self.diagonal[j];
            }
            solve_cholesky(&b.chol, b.len, &mut x[b.start..b.start + b.len]);
            covered_to = b.start + b.len;
        }
        for j in covered_to..x.len() {
            x[j] *= self.diagonal[j];
        }
    }
}

/// Cholesky `A = L L^T` in place (row-major, lower triangle holds `L`);
/// `Err(k)` at a non-positive pivot `k`.
pub(crate) fn cholesky_in_place(a: &mut [f64], n: usize) -> std::result::Result<(), usize> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return Err(j);
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        // Rows below j: L[i][j] = (A[i][j] - sum_k L[i][k] L[j][k]) / L[j][j].
        let lj: Vec<f64> = a[j * n..j * n + j].to_vec();
        for i in j + 1..n {
            let row_i = &mut a[i * n..i * n + n];
            let s: f64 = row_i[..j].iter().zip(&lj).map(|(x, y)| x * y).sum();
            row_i[j] = (row_i[j] - s) / d;
        }
    }
    Ok(())
}

/// Solves `L L^T x = b` in place.
pub(crate) fn solve_cholesky(l: &[f64], n: usize, x: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        let s: f64 = row.iter().zip(&x[..i]).map(|(a, b)| a * b).sum();
        x[i] = (x[i] - s) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = x[i];
        for k in i + 1..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_preconditioner_solves_its_blocks() {
        // B = A A^T + I for a fixed A (3 x 3) and a 2 x 2 block; variable 5 free.
        let a = [[1.0, 2.0, 0.5], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0]];
        let mut b1 = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                b1[i * 3 + j] =
                    (0..3).map(|k| a[i][k] * a[j][k]).sum::<f64>() + if i == j { 1.0 } else { 0.0 };
            }
        }
        let b2 = vec![4.0, 1.0, 1.0, 3.0];
        let p = Preconditioner::blocks(6, vec![(0, b1.clone()), (3, b2.clone())]).unwrap();
        let x = [1.0, -2.0, 0.5, 3.0, -1.0, 7.0];
        let mut y = x;
        p.apply(&mut y);
        // B y = x on each block, identity elsewhere.
        for i in 0..3 {
            let bx: f64 = (0..3).map(|j| b1[i * 3 + j] * y[j]).sum();
            assert!((bx - x[i]).abs() < 1e-12, "{bx} vs {}", x[i]);
        }
        for i in 0..2 {
            let bx: f64 = (0..2).map(|j| b2[i * 2 + j] * y[3 + j]).sum();
            assert!((bx - x[3 + i]).abs() < 1e-12);
        }
        assert!((y[5] - 7.0).abs() < 1e-15);
        // Not positive definite.
        assert!(Preconditioner::blocks(2, vec![(0, vec![1.0, 2.0, 2.0, 1.0])]).is_err());
    }
}
