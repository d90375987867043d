"""Explicit SIMD vectors for numba kernels: float32 vectors of a compile-time width.

numba's loop vectoriser keeps a per-column accumulator in memory (a load and a
store per nonzero of the matrix); an LLVM vector value ``<n x float>`` carried in
a local variable lives in registers instead (LLVM splits it into as many
512/256-bit registers as the target has). These few intrinsics are all the batched
kernels need. The width is a compile-time constant carried by the *type* of a
:class:`Lanes` argument (``Lanes(64)`` types as ``LanesType(64)``): a kernel
taking one is compiled once per width, dispatch stays cheap, and the on-disk
cache works (``numba.literally`` would re-enter the compiler on every call).

Every operation is lane-wise and deterministic (one fused multiply-add per lane),
so a column's result does not depend on which lanes or blocks its neighbours
occupy: the batched engine relies on this for results that do not change with
the block width, the thread count or the chunking of a volume.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import NativeValue, intrinsic, models, register_model, typeof_impl, unbox


class Lanes:
    """A compile-time integer for kernels: ``Lanes(n)`` has the numba type ``LanesType(n)``."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = int(n)

    def __repr__(self) -> str:
        return f"Lanes({self.n})"


class LanesType(types.Type):
    def __init__(self, n: int):
        self.n = int(n)
        super().__init__(name=f"Lanes({self.n})")


@typeof_impl.register(Lanes)
def _typeof_lanes(val, c):
    return LanesType(val.n)


register_model(LanesType)(models.OpaqueModel)


@unbox(LanesType)
def _unbox_lanes(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


def _width(n) -> int | None:
    if isinstance(n, LanesType):
        return n.n
    if isinstance(n, types.IntegerLiteral):
        return int(n.literal_value)
    return None


@intrinsic
def nlanes(typingctx, n):
    """The integer carried by a :class:`Lanes` argument, as a compile-time constant."""
    if not isinstance(n, LanesType):
        return None

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n.n)

    return types.intp(n), codegen


class F32Vec(types.Type):
    """An LLVM ``<n x float>`` value."""

    def __init__(self, n: int):
        self.n = int(n)
        super().__init__(name=f"F32Vec({self.n})")


@register_model(F32Vec)
class _F32VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.FloatType(), fe_type.n))


def _vty(n: int) -> ir.VectorType:
    return ir.VectorType(ir.FloatType(), n)


def _splat(builder, val, n: int):
    vt = _vty(n)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), val, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n)
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), mask)


def _is_f32_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.float32


def _element_pointer(context, builder, arrty, arr, offty, off):
    ary = context.make_array(arrty)(context, builder, arr)
    idx = context.cast(builder, off, offty, types.intp)
    return builder.gep(ary.data, [idx], inbounds=True)


@intrinsic
def sload(typingctx, arr, offset):
    """Element ``offset`` of the C-contiguous ``arr`` in flat order (any dtype), unchecked.

    ``arr[i]`` makes numba wrap a possibly negative ``i`` (a sign test and a select per
    access) and multiply by a runtime stride on a 2-D array; the engine's matrix indices
    are never negative, and in its inner loops those integer operations cost as much
    issue slots as the multiply-adds they feed. Same value as ``arr.flat[offset]``.
    """
    if not (isinstance(arr, types.Array) and arr.layout == "C" and isinstance(offset, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1]))

    return arr.dtype(arr, offset), codegen


@intrinsic
def vzero(typingctx, n):
    """A vector of ``n`` zeros (``n`` a :class:`Lanes` or a literal int)."""
    if _width(n) is None:
        return None
    vt = F32Vec(_width(n))

    def codegen(context, builder, sig, args):
        return ir.Constant(_vty(vt.n), [0.0] * vt.n)

    return vt(n), codegen


@intrinsic
def vload(typingctx, arr, offset, n):
    """``n`` consecutive floats of the C-contiguous ``arr`` from flat element ``offset``."""
    if not (_is_f32_array(arr) and isinstance(offset, types.Integer) and _width(n) is not None):
        return None
    vt = F32Vec(_width(n))

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        return builder.load(builder.bitcast(ptr, _vty(vt.n).as_pointer()), align=4)

    return vt(arr, offset, n), codegen


@intrinsic
def vstore(typingctx, arr, offset, v):
    """Store ``v`` into ``arr`` at flat element ``offset``."""
    if not (_is_f32_array(arr) and isinstance(offset, types.Integer) and isinstance(v, F32Vec)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        builder.store(args[2], builder.bitcast(ptr, _vty(v.n).as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(arr, offset, v), codegen


@intrinsic
def vfma(typingctx, s, v, acc):
    """``s * v + acc`` with one rounding (``llvm.fma``); ``s`` a float32 scalar."""
    if not (isinstance(s, types.Float) and isinstance(v, F32Vec) and acc == v):
        return None

    def codegen(context, builder, sig, args):
        vt = _vty(v.n)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{v.n}f32")
        sv = context.cast(builder, args[0], sig.args[0], types.float32)
        return builder.call(fn, [_splat(builder, sv, v.n), args[1], args[2]])

    return v(s, v, acc), codegen


@intrinsic
def vmax0(typingctx, v):
    """``max(v, 0)`` lane-wise; NaN stays NaN (as ``np.maximum`` and ASTRA's clamp)."""
    if not isinstance(v, F32Vec):
        return None

    def codegen(context, builder, sig, args):
        zero = ir.Constant(_vty(v.n), [0.0] * v.n)
        neg = builder.fcmp_ordered("<", args[0], zero)
        return builder.select(neg, zero, args[0])

    return v(v), codegen
