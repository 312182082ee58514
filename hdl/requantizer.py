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

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.latency import requantizer_latency

from .dsp import RegisteredMultiplier
from .pipeline import KEEP, elastic_handshake
from .rounding import excess_bits, rne_shift_coarse, rne_shift_fine

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
        assert len(self._STAGES) == requantizer_latency()
        return requantizer_latency()

    # Fields of each pipeline register, per lane; the shared bounds travel along in every stage. Each
    # stage holds at most one carry chain, one shifter or one DSP multiplier (the 25 x 24 product is
    # four partial products, each a `RegisteredMultiplier` whose operand and product registers are those of
    # stages 4 and 5, registered again in 5b, then two adds), so the unit runs at the clock of the array: a rounding
    # step is two shift stages (`rne_shift_coarse`, `rne_shift_fine`: quotient and round-up bit) and the increment.
    _STAGES = (
        {"neg": 1, "a": unsigned(32), "m": unsigned(24), "e": unsigned(8)},                        # 1
        {"neg": 1, "a": unsigned(32), "s": unsigned(4), "m": unsigned(24), "e": unsigned(8)},      # 2
        {"neg": 1, "part": unsigned(29), "fine": unsigned(2), "lost": 1, "es": signed(10),
         "m": unsigned(24)},                                                                       # 3a
        {"neg": 1, "q": unsigned(25), "up": 1, "es": signed(10), "m": unsigned(24)},               # 3
        {"neg": 1, "es": signed(10)},                         # 4 (and a, m in the multipliers' operand registers)
        {"neg": 1, "es": signed(10)},                         # 5 (and the products in the multipliers' registers)
        {"neg": 1, "ll": unsigned(34), "lh": unsigned(24), "hl": unsigned(25), "hh": unsigned(15),
         "es": signed(10)},                                                                        # 5b
        {"neg": 1, "ll": unsigned(34), "mid": unsigned(26), "hh": unsigned(15), "es": signed(10)},  # 6
        {"neg": 1, "p": unsigned(49), "es": signed(10)},                                           # 7
        {"neg": 1, "p": unsigned(49), "t": unsigned(5), "es": signed(10)},                         # 8
        {"neg": 1, "part": unsigned(29), "fine": unsigned(2), "lost": 1, "k": signed(10)},         # 9
        {"neg": 1, "q": unsigned(25), "up": 1, "k": signed(10)},                                   # 10
        {"neg": 1, "p": unsigned(25), "right": unsigned(5), "left": unsigned(4), "k_pos": 1, "far": 1},  # 11
        {"neg": 1, "part": unsigned(26), "fine": unsigned(2), "lost": 1, "left": unsigned(35), "k_pos": 1},  # 12
        {"neg": 1, "q": unsigned(25), "up": 1, "left": unsigned(35), "k_pos": 1},                  # 13
        {"neg": 1, "r": range(_SATURATE + 1)},                                                     # 14
        {"v": signed(10), "y_zp": signed(8), "lo": signed(10), "hi": signed(10), "qmax": signed(8)},  # 15
        {"v": signed(10), "y_zp": signed(8), "hi": signed(10), "qmax": signed(8)},                  # 16
        {"q": signed(8)},                                                                          # 17
    )
    _SHARED = {"y_zp": signed(8), "lo": signed(10), "hi": signed(10), "qmax": signed(8)}
    #: The last stages hold no shared fields: from stage 15 on every lane carries its own copy of the bounds
    #: (kept apart in synthesis, `pipeline.KEEP`), which the placer can put next to the lane's logic.
    _OWN_BOUNDS = 3

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes

        # One register per stage: a `valid` bit (reset) and the data (no reset needed).
        regs = []
        own_from = len(self._STAGES) - self._OWN_BOUNDS
        for index, fields in enumerate(self._STAGES):
            layout = data.StructLayout({
                "lanes": data.ArrayLayout(data.StructLayout(fields), lanes),
                **(self._SHARED if index < own_from else {}),
            })
            regs.append(Signal(layout, name=f"s{index + 1}", reset_less=True, attrs=KEEP if index == own_from else {}))
        valids, loads = elastic_handshake(m, self.i, self.o, len(regs), first=1)

        def step(index, compute_lane):
            """Register stage `index` from the previous one: shared fields pass, lanes computed
            (``compute_lane(lane view, source, lane number)``)."""
            source, target = (self.i.payload if index == 0 else regs[index - 1]), regs[index]
            statements = []
            for lane in range(lanes):
                # Each field is assigned on its own: wider results are truncated to the field.
                for name, value in compute_lane(source.lanes[lane], source, lane).items():
                    statements.append(target.lanes[lane][name].eq(value))
            if index == 0:
                statements += [
                    target.y_zp.eq(source.y_zp),
                    target.lo.eq(source.qmin - source.y_zp),
                    target.hi.eq(source.qmax - source.y_zp),
                    target.qmax.eq(source.qmax),
                ]
            elif index < own_from:
                statements += [target[name].eq(source[name]) for name in self._SHARED]
            with m.If(loads[index]):
                m.d.sync += statements

        # 1. sign and magnitude.
        def stage1(lane, shared, index):
            return dict(neg=lane.acc < 0, a=abs(lane.acc), m=lane.m, e=lane.e)

        # 2. how far |acc| extends beyond 24 significant bits.
        def stage2(lane, shared, index):
            return dict(neg=lane.neg, a=lane.a, s=excess_bits(lane.a, 24), m=lane.m, e=lane.e)

        # 3-4. step 1: round |acc| to 24 significant bits (a 25-bit significand after a carry): the shift in
        # two steps (by the high bits of s, then the low ones), then the increment. The quotient is below
        # 2**24, so 29 bits of the coarse shift hold it with the bits below. E - s, the part of the final
        # shift known now, is formed on the way.
        def stage3a(lane, shared, index):
            part, fine, lost = rne_shift_coarse(lane.a, lane.s, width=29)
            return dict(neg=lane.neg, part=part, fine=fine, lost=lost, es=lane.e - lane.s, m=lane.m)

        def stage3(lane, shared, index):
            q, up = rne_shift_fine(lane.part, lane.fine, lane.lost)
            return dict(neg=lane.neg, q=q, up=up, es=lane.es, m=lane.m)

        # 4-7. step 2: the exact product of the significands, from 17-bit pieces (one DSP multiplier
        # each): ``a*m = ll + (lh + hl) << 17 + hh << 34``; ``ll < 2**34``, so ``ll + hh << 34`` is a
        # concatenation and the sum takes two adders. Stage 4 rounds |acc| (the increment) into the
        # multipliers' operand registers, stage 5 is their product registers (both inside the DSP blocks on
        # ECP5, `RegisteredMultiplier`), loaded with the stages' other fields.
        products = []
        for lane in range(lanes):
            source = regs[3].lanes[lane]
            a, mant = Signal(25, name=f"a{lane}"), Signal(24, name=f"m{lane}")
            m.d.comb += [a.eq(source.q + source.up), mant.eq(source.m)]
            pieces = {}
            for name, x, y in (("ll", a[:17], mant[:17]), ("lh", a[:17], mant[17:]), ("hl", a[17:], mant[:17]),
                               ("hh", a[17:], mant[17:])):
                mult = RegisteredMultiplier(unsigned(len(x)), unsigned(len(y)))
                m.submodules[f"mul_{name}{lane}"] = mult
                m.d.comb += [mult.a.eq(x), mult.b.eq(y), mult.ce_a.eq(loads[4]), mult.ce_b.eq(loads[4]),
                             mult.ce_p.eq(loads[5])]
                pieces[name] = mult.p
            products.append(pieces)

        def stage4(lane, shared, index):
            return dict(neg=lane.neg, es=lane.es)

        def stage5(lane, shared, index):
            return dict(neg=lane.neg, es=lane.es)

        # 5b. the products registered again: the multipliers' outputs go to registers and nowhere else, so
        # the adders of stage 6 get a cycle of wire to reach them.
        def stage5b(lane, shared, index):
            p = products[index]
            return dict(neg=lane.neg, ll=p["ll"], lh=p["lh"], hl=p["hl"], hh=p["hh"], es=lane.es)

        def stage6(lane, shared, index):
            return dict(neg=lane.neg, ll=lane.ll, mid=lane.lh + lane.hl, hh=lane.hh, es=lane.es)

        def stage7(lane, shared, index):
            return dict(neg=lane.neg, p=Cat(lane.ll, lane.hh) + (lane.mid << 17), es=lane.es)

        # 8. step 3, first part: how many low bits of the product must go.
        def stage8(lane, shared, index):
            return dict(neg=lane.neg, p=lane.p, t=excess_bits(lane.p, 24), es=lane.es)

        # 9-11. step 3: round the product to 24 significant bits (shift in two steps -- by the high bits of
        # t, then the low ones -- and increment); k = E - s - t. The quotient is below 2**25, so 29 bits of
        # the coarse shift hold it with the bits below. Stage 11 also decodes k for step 4: right shift
        # (amounts >= 26 all give 0: p < 2**25), or left shift, or (``-k >= 10``) saturation.
        def stage9(lane, shared, index):
            part, fine, lost = rne_shift_coarse(lane.p, lane.t, width=29)
            return dict(neg=lane.neg, part=part, fine=fine, lost=lost, k=lane.es - lane.t)

        def stage10(lane, shared, index):
            q, up = rne_shift_fine(lane.part, lane.fine, lane.lost)
            return dict(neg=lane.neg, q=q, up=up, k=lane.k)

        def stage11(lane, shared, index):
            k = lane.k
            return dict(neg=lane.neg, p=lane.q + lane.up, right=Mux(k > 26, 26, k)[:5], left=(-k)[:4],
                        k_pos=k > 0, far=(-k) >= 10)

        # 12-14. step 4: the final shift by k, right with rounding (shift in two steps, increment) or left,
        # saturated. The saturation tests need no comparator: a value exceeds 511 when it has bits above bit 8.
        def stage12(lane, shared, index):
            part, fine, lost = rne_shift_coarse(lane.p, lane.right)
            left = Mux(lane.far, Mux(lane.p != 0, _SATURATE, 0), lane.p << lane.left)
            return dict(neg=lane.neg, part=part, fine=fine, lost=lost, left=left, k_pos=lane.k_pos)

        def stage13(lane, shared, index):
            q, up = rne_shift_fine(lane.part, lane.fine, lane.lost)
            return dict(neg=lane.neg, q=q, up=up, left=lane.left, k_pos=lane.k_pos)

        def stage14(lane, shared, index):
            right_big = (lane.q[9:] != 0) | ((lane.q[:9] == _SATURATE) & lane.up)
            right = Mux(right_big, _SATURATE, lane.q[:9] + lane.up)
            left = Mux(lane.left[9:] != 0, _SATURATE, lane.left[:9])
            return dict(neg=lane.neg, r=Mux(lane.k_pos, right, left))

        # 15-17. step 5: sign, clamp to [qmin - y_zp, qmax - y_zp] (max first, as onnxruntime), + y_zp.
        # The min and the offset are side by side: clamped to hi, the code is qmax. Each lane takes its own
        # copy of the bounds in stage 15.
        def stage15(lane, shared, index):
            return dict(v=Mux(lane.neg, -lane.r, lane.r), y_zp=shared.y_zp, lo=shared.lo, hi=shared.hi,
                        qmax=shared.qmax)

        def stage16(lane, shared, index):
            return dict(v=Mux(lane.v < lane.lo, lane.lo, lane.v), y_zp=lane.y_zp, hi=lane.hi, qmax=lane.qmax)

        def stage17(lane, shared, index):
            return dict(q=Mux(lane.v > lane.hi, lane.qmax, lane.v + lane.y_zp))

        stage_functions = [stage1, stage2, stage3a, stage3, stage4, stage5, stage5b, stage6, stage7, stage8, stage9,
                           stage10, stage11, stage12, stage13, stage14, stage15, stage16, stage17]
        assert len(stage_functions) == len(self._STAGES)
        for index, compute in enumerate(stage_functions):
            step(index, compute)

        m.d.comb += self.o.valid.eq(valids[-1])
        for lane in range(lanes):
            m.d.comb += self.o.payload[lane].eq(regs[-1].lanes[lane].q)
        return m
