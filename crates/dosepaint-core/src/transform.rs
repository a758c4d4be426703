//! Rigid and affine transforms between frames of reference.

use nalgebra::{Matrix3, Matrix4, Vector3, Vector4};
use serde::{Deserialize, Serialize};

use crate::{Error, PointMm, Result};

/// An affine map between two patient frames of reference (LPS, mm), as a 4x4
/// homogeneous matrix acting on column vectors: `q = M [p; 1]`.
///
/// A DICOM spatial registration (REG) stores exactly such a matrix. To bring
/// a PET registered to the planning CT onto the planning grid, build the map
/// from *planning* coordinates to *PET* coordinates and pass it to
/// [`Volume::resample_through`](crate::Volume::resample_through).
///
/// ```
/// use dosepaint_core::AffineTransform;
/// let t = AffineTransform::rigid([0.0, 0.0, std::f64::consts::FRAC_PI_2], [10.0, 0.0, 0.0])?;
/// let q = t.apply([1.0, 0.0, 0.0]);
/// assert!((q[0] - 10.0).abs() < 1e-12 && (q[1] - 1.0).abs() < 1e-12);
/// let back = t.inverse()?.apply(q);
/// assert!((back[0] - 1.0).abs() < 1e-12);
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TransformSpec", into = "TransformSpec")]
pub struct AffineTransform {
    matrix: Matrix4<f64>,
}

#[derive(Serialize, Deserialize)]
struct TransformSpec {
    /// Row-major 4x4 matrix.
    matrix: [[f64; 4]; 4],
}

impl TryFrom<TransformSpec> for AffineTransform {
    type Error = Error;
    fn try_from(s: TransformSpec) -> Result<Self> {
        AffineTransform::from_rows(s.matrix)
    }
}

impl From<AffineTransform> for TransformSpec {
    fn from(t: AffineTransform) -> Self {
        TransformSpec {
            matrix: t.to_rows(),
        }
    }
}

impl Default for AffineTransform {
    fn default() -> Self {
        Self::identity()
    }
}

impl AffineTransform {
    /// The identity map.
    pub fn identity() -> Self {
        Self {
            matrix: Matrix4::identity(),
        }
    }

    /// A pure translation by `t` mm.
    ///
    /// # Errors
    /// If `t` is not finite.
    pub fn translation(t: [f64; 3]) -> Result<Self> {
        Self::rigid([0.0; 3], t)
    }

    /// A rigid map: rotation by `angles_rad` about the x, then y, then z axis
    /// (right-handed, `R = Rz Ry Rx`), followed by a translation in mm.
    ///
    /// # Errors
    /// If any angle or translation is not finite.
    pub fn rigid(angles_rad: [f64; 3], translation_mm: [f64; 3]) -> Result<Self> {
        if angles_rad
            .iter()
            .chain(&translation_mm)
            .any(|v| !v.is_finite())
        {
            return Err(Error::invalid(
                "rigid transform",
                format!("angles {angles_rad:?} rad / translation {translation_mm:?} mm not finite"),
            ));
        }
        let r = nalgebra::Rotation3::from_euler_angles(angles_rad[0], angles_rad[1], angles_rad[2]);
        let mut m = Matrix4::identity();
        m.fixed_view_mut::<3, 3>(0, 0).copy_from(r.matrix());
        m.fixed_view_mut::<3, 1>(0, 3)
            .copy_from(&Vector3::from(translation_mm));
        Ok(Self { matrix: m })
    }

    /// An affine map from a row-major 4x4 matrix (the layout of DICOM's
    /// `FrameOfReferenceTransformationMatrix`).
    ///
    /// # Errors
    /// If an entry is not finite, the last row is not `0 0 0 1`, or the linear
    /// part is singular.
    pub fn from_rows(rows: [[f64; 4]; 4]) -> Result<Self> {
        if rows.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::invalid("affine matrix", "has a non-finite entry"));
        }
        let last = rows[3];
        if last[0].abs() > 1e-9
            || last[1].abs() > 1e-9
            || last[2].abs() > 1e-9
            || (last[3] - 1.0).abs() > 1e-9
        {
            return Err(Error::invalid(
                "affine matrix",
                format!("last row {last:?} must be [0, 0, 0, 1]"),
            ));
        }
        let matrix = Matrix4::from_fn(|r, c| rows[r][c]);
        let linear: Matrix3<f64> = matrix.fixed_view::<3, 3>(0, 0).into_owned();
        if linear.determinant().abs() < 1e-12 {
            return Err(Error::invalid("affine matrix", "linear part is singular"));
        }
        Ok(Self { matrix })
    }

    /// The matrix as rows.
    pub fn to_rows(&self) -> [[f64; 4]; 4] {
        let mut rows = [[0.0; 4]; 4];
        for (r, row) in rows.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = self.matrix[(r, c)];
            }
        }
        rows
    }

    /// Maps a point.
    #[inline]
    pub fn apply(&self, p: PointMm) -> PointMm {
        let q = self.matrix * Vector4::new(p[0], p[1], p[2], 1.0);
        [q[0], q[1], q[2]]
    }

    /// The inverse map.
    ///
    /// # Errors
    /// If the matrix is numerically singular.
    pub fn inverse(&self) -> Result<Self> {
        self.matrix
            .try_inverse()
            .map(|matrix| Self { matrix })
            .ok_or_else(|| Error::invalid("affine matrix", "is not invertible"))
    }

    /// `self` after `first`: the map `p -> self(first(p))`.
    pub fn after(&self, first: &AffineTransform) -> Self {
        Self {
            matrix: self.matrix * first.matrix,
        }
    }

    /// Whether the linear part is a rotation (orthonormal, determinant +1)
    /// within `tol`.
    pub fn is_rigid(&self, tol: f64) -> bool {
        let r: Matrix3<f64> = self.matrix.fixed_view::<3, 3>(0, 0).into_owned();
        let should_be_identity = r.transpose() * r;
        (should_be_identity - Matrix3::identity()).abs().max() <= tol
            && (r.determinant() - 1.0).abs() <= tol
    }
}
