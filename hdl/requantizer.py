"""Requantizer: int32 accumulator -> int8 code, bit-exact with onnxruntime, in integers only.

onnxruntime requantizes with float32 operations (``f32(acc) * scale``, clamp, round half to even,
add the zero point; ``/work/shared/docs/ort-integer-semantics.md`` section 1). With the float32
scale written as ``M * 2**-E`` (``M`` the 24-bit significand with its hidden bit) the same result
comes from integer steps -- the contract of ``systolix.quantize.requant.requantize``:

1. ``a = |acc|`` rounded to 24 significant bits, ties to even (the int -> float conversion);
2. ``P = a * M``, exact;
3. ``P`` rounded to 24 significant bits, ties to even (the rounding of the float multiply);
4. ``r = RNE(P' / 2**E)`` (the float -> int conversion);
5. ``q = clamp(sign(acc) * r, qmin - y_zp, qmax - y_zp) + y_zp``.

The trick that keeps the datapath narrow: a number rounded to 24 significant bits is kept as a
24-bit significand and a shift, never as the full-width value. Step 1 gives ``a = a_m << s`` with
``s <= 8``; step 3 rounds ``a_m * M`` (at most 49 bits) to ``p << t`` with ``t <= 25``; the shift of
step 4 is then ``k = E - s - t`` applied to the 25-bit ``p``: right with rounding when ``k > 0``, left
(saturating) when ``k <= 0``. Results beyond +-511 are saturated early, since the clamp bounds lie
within +-255. Clamping carries a fused ReLU (``qmin == y_zp``).

Parameters arrive with each accumulator on the input stream (``M`` and ``E`` per lane, ``y_zp``,
``qmin``, ``qmax`` per transfer), so the unit holds no state: a per-channel parameter memory belongs
to the unit that feeds it. ``E`` must be in [0, 255] and ``M < 2**24`` (``M == 0`` gives ``y_zp``).
Scales of ``2**24`` or more (``E < 0``) can be given as ``E = 0``: any non-zero accumulator then
saturates exactly as it would with the true exponent.

The pipeline has `Requantizer.latency` stages; each stage moves on when the next one is empty or
moving, so back-pressure from the output stalls only as far back as needed and bubbles are
squeezed out.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .pipeline import elastic_handshake
from .rounding import excess_bits, rne_shift_right

__all__ = ["Requantizer", "requantizer_input_layout"]

# Magnitudes are saturated to this value once they are sure to be clamped (|bound| <= 255).
_SATURATE = 511


def requantizer_input_layout(lanes: int) -> data.StructLayout:
    """Payload of `Requantizer.i`: ``lanes`` of (acc, m, e), and y_zp, qmin, qmax for all lanes."""
    lane = data.StructLayout({"acc": signed(32), "m": unsigned(24), "e": unsigned(8)})
    return data.StructLayout({
        "lanes": data.ArrayLayout(lane, lanes),
        "y_zp": signed(8),
        "qmin": signed(8),
        "qmax": signed(8),
    })


class Requantizer(wiring.Component):
    """Pipelined integer-only requantizer, ``lanes`` accumulators per transfer.

    Parameters
    ----------
    lanes : int
        Accumulators processed per transfer.

    Members
    -------
    i : In(stream.Signature(requantizer_input_layout(lanes)))
        Accumulators with their parameters.
    o : Out(stream.Signature(ArrayLayout(signed(8), lanes)))
        The int8 codes, in order.
    """

    def __init__(self, lanes: int = 1):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes <= 0:
            self._MustUse__used = True  # not a design left unused: it failed to build
            raise ValueError(f"lanes must be a positive int, not {lanes!r}")
        self._lanes = lanes
        super().__init__({
            "i": In(stream.Signature(requantizer_input_layout(lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(8), lanes))),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        """Cycles from a transfer on ``i`` to its result on ``o`` (when ``o`` is not stalled)."""
        return len(self._STAGES)

    # Fields of each pipeline register, per lane; the shared bounds travel along in every stage.
    _STAGES = (
        {"neg": 1, "a": unsigned(32), "s": unsigned(4), "m": unsigned(24), "e": unsigned(8)},
        {"neg": 1, "a": unsigned(25), "s": unsigned(4), "m": unsigned(24), "e": unsigned(8)},
        {"neg": 1, "p": unsigned(49), "s": unsigned(4), "e": unsigned(8)},
        {"neg": 1, "p": unsigned(49), "t": unsigned(5), "k": signed(10)},
        {"neg": 1, "p": unsigned(25), "k": signed(10)},
        {"neg": 1, "r": range(_SATURATE + 1)},
        {"q": signed(8)},
    )
    _SHARED = {"y_zp": signed(8), "lo": signed(10), "hi": signed(10)}

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes

        # One register per stage: a `valid` bit (reset) and the data (no reset needed).
        regs = []
        for index, fields in enumerate(self._STAGES):
            layout = data.StructLayout({
                "lanes": data.ArrayLayout(data.StructLayout(fields), lanes), **self._SHARED,
            })
            regs.append(Signal(layout, name=f"s{index + 1}", reset_less=True))
        valids, loads = elastic_handshake(m, self.i, self.o, len(regs), first=1)

        def step(index, compute_lane):
            """Register stage `index` from the previous one: shared fields pass, lanes computed."""
            source, target = (self.i.payload if index == 0 else regs[index - 1]), regs[index]
            statements = []
            for lane in range(lanes):
                # Each field is assigned on its own: wider results are truncated to the field.
                for name, value in compute_lane(source.lanes[lane]).items():
                    statements.append(target.lanes[lane][name].eq(value))
            if index == 0:
                statements += [
                    target.y_zp.eq(source.y_zp),
                    target.lo.eq(source.qmin - source.y_zp),
                    target.hi.eq(source.qmax - source.y_zp),
                ]
            else:
                statements += [target[name].eq(source[name]) for name in self._SHARED]
            with m.If(loads[index]):
                m.d.sync += statements

        # 1. sign and magnitude; how far |acc| extends beyond 24 significant bits.
        def stage1(lane):
            magnitude = abs(lane.acc)
            return dict(neg=lane.acc < 0, a=magnitude, s=excess_bits(magnitude, 24), m=lane.m, e=lane.e)

        # 2. step 1: round |acc| to 24 significant bits (a 25-bit significand after a carry).
        def stage2(lane):
            return dict(neg=lane.neg, a=rne_shift_right(lane.a, lane.s), s=lane.s, m=lane.m, e=lane.e)

        # 3. step 2: the exact product of the significands.
        def stage3(lane):
            return dict(neg=lane.neg, p=lane.a * lane.m, s=lane.s, e=lane.e)

        # 4. step 3, first half: how many low bits of the product must go.
        def stage4(lane):
            t = excess_bits(lane.p, 24)
            return dict(neg=lane.neg, p=lane.p, t=t, k=lane.e - lane.s - t)

        # 5. step 3, second half: round the product to 24 significant bits.
        def stage5(lane):
            return dict(neg=lane.neg, p=rne_shift_right(lane.p, lane.t), k=lane.k)

        # 6. step 4: the final shift by k = E - s - t, right with rounding or left, saturated.
        def stage6(lane):
            right_amount = Mux(lane.k > 26, 26, lane.k)[:5]  # p < 2**25: shifts >= 26 all give 0
            right = rne_shift_right(lane.p, right_amount)
            left_amount = (-lane.k)[:4]
            left = Mux((-lane.k) >= 10, Mux(lane.p != 0, _SATURATE, 0), lane.p << left_amount)
            magnitude = Mux(lane.k > 0, right, left)
            return dict(neg=lane.neg, r=Mux(magnitude > _SATURATE, _SATURATE, magnitude))

        stage_functions = [stage1, stage2, stage3, stage4, stage5, stage6]
        for index, compute in enumerate(stage_functions):
            step(index, compute)

        # 7. step 5: sign, clamp to [qmin - y_zp, qmax - y_zp] (max first, as onnxruntime), + y_zp.
        source, target = regs[-2], regs[-1]
        with m.If(loads[-1]):
            for lane in range(lanes):
                value = Mux(source.lanes[lane].neg, -source.lanes[lane].r, source.lanes[lane].r)
                value = Mux(value < source.lo, source.lo, value)
                value = Mux(value > source.hi, source.hi, value)
                m.d.sync += target.lanes[lane].q.eq(value + source.y_zp)

        m.d.comb += self.o.valid.eq(valids[-1])
        for lane in range(lanes):
            m.d.comb += self.o.payload[lane].eq(regs[-1].lanes[lane].q)
        return m
