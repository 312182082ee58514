// C API around the Verilated accelerator, loaded by sim/verilator_backend.py with ctypes.
//
// The host protocol of hdl/top.py, with no per-cycle Python: the model's memory images are written through
// the load bus (`sxl_load`, one word per clock), rows of the activation memory are written and read
// through the host port (host_we / host_re, one row per clock, data of a read the clock after), and
// `sxl_run` pulses `start` and clocks the design until `done`, counting the cycles spent on every program
// counter value; `sxl_step` does the same up to the end of the next instruction (`step` mode). The clock edge semantics match the Amaranth testbench (sim/amaranth_backend.py):
// `done` and `pc` are sampled just before each rising edge, and the edge that samples `done` high is the
// last one counted. Rows are L int8 lanes, lane 0 in the low byte; ports of 8L > 64 bits are VlWide.

#include <cstdint>
#include <memory>
#include <type_traits>

#include "Vaccelerator.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
using TraceFile = VerilatedFstC;
#elif VM_TRACE
#include "verilated_vcd_c.h"
using TraceFile = VerilatedVcdC;
#endif

#define SXL_API extern "C" __attribute__((visibility("default")))

namespace {

struct Sim {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vaccelerator> top;
#if VM_TRACE
    std::unique_ptr<TraceFile> trace;
#endif
};

// A port of up to 64 bits is an integer; a wider one is a VlWide of 32-bit words.
template <typename Port>
void put_bytes(Port& port, const uint8_t* bytes, int count) {
    using T = std::decay_t<Port>;
    if constexpr (std::is_integral_v<T>) {
        T value = 0;
        for (int i = 0; i < count; ++i) value |= static_cast<T>(bytes[i]) << (8 * i);
        port = value;
    } else {
        for (int w = 0; w < (count + 3) / 4; ++w) {
            uint32_t value = 0;
            for (int i = 0; i < 4 && 4 * w + i < count; ++i) value |= static_cast<uint32_t>(bytes[4 * w + i]) << (8 * i);
            port[w] = value;
        }
    }
}

template <typename Port>
void get_bytes(const Port& port, uint8_t* bytes, int count) {
    using T = std::decay_t<Port>;
    if constexpr (std::is_integral_v<T>) {
        for (int i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(port >> (8 * i));
    } else {
        for (int i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(port[i / 4] >> (8 * (i % 4)));
    }
}

inline void dump(Sim* sim) {
#if VM_TRACE
    if (sim->trace) sim->trace->dump(sim->context->time());
#else
    (void)sim;
#endif
}

// One clock cycle: rising edge, then falling edge (inputs are changed only while the clock is low).
inline void tick(Sim* sim) {
    Vaccelerator* top = sim->top.get();
    top->clk = 1;
    top->eval();
    sim->context->timeInc(1);
    dump(sim);
    top->clk = 0;
    top->eval();
    sim->context->timeInc(1);
    dump(sim);
}

}  // namespace

// Bytes per activation row (lanes; given by the build as -DSXL_ROW_BYTES), so the loader can check it.
SXL_API int sxl_row_bytes() { return SXL_ROW_BYTES; }

SXL_API int sxl_has_trace() { return VM_TRACE ? 1 : 0; }

SXL_API void* sxl_create() {
    auto* sim = new Sim;
    sim->context = std::make_unique<VerilatedContext>();
#if VM_TRACE
    sim->context->traceEverOn(true);
#endif
    sim->top = std::make_unique<Vaccelerator>(sim->context.get(), "accelerator");
    Vaccelerator* top = sim->top.get();
    top->clk = 0;
    top->rst = 0;
    top->start = 0;
    top->step = 0;
    top->host_we = 0;
    top->host_re = 0;
    top->load_we = 0;
    top->eval();
    return sim;
}

SXL_API void sxl_destroy(void* handle) {
    auto* sim = static_cast<Sim*>(handle);
    if (sim == nullptr) return;
#if VM_TRACE
    if (sim->trace) sim->trace->close();
#endif
    sim->top->final();
    delete sim;
}

// One cycle with `rst` high: every register back to its initial value (memories keep their contents).
SXL_API void sxl_reset(void* handle) {
    auto* sim = static_cast<Sim*>(handle);
    sim->top->rst = 1;
    tick(sim);
    sim->top->rst = 0;
    sim->top->eval();
}

// Write `count` rows of SXL_ROW_BYTES bytes each, starting at row `addr` of the activation memory.
SXL_API void sxl_write_rows(void* handle, uint32_t addr, uint32_t count, const uint8_t* bytes) {
    auto* sim = static_cast<Sim*>(handle);
    Vaccelerator* top = sim->top.get();
    top->host_we = 1;
    for (uint32_t i = 0; i < count; ++i) {
        top->host_addr = addr + i;
        put_bytes(top->host_wdata, bytes + static_cast<size_t>(i) * SXL_ROW_BYTES, SXL_ROW_BYTES);
        tick(sim);
    }
    top->host_we = 0;
    top->eval();
}

// Read `count` rows starting at row `addr` (synchronous read: the data of each address one clock later).
SXL_API void sxl_read_rows(void* handle, uint32_t addr, uint32_t count, uint8_t* bytes) {
    auto* sim = static_cast<Sim*>(handle);
    Vaccelerator* top = sim->top.get();
    top->host_re = 1;
    for (uint32_t i = 0; i < count; ++i) {
        top->host_addr = addr + i;
        tick(sim);
        get_bytes(top->host_rdata, bytes + static_cast<size_t>(i) * SXL_ROW_BYTES, SXL_ROW_BYTES);
    }
    top->host_re = 0;
    top->eval();
}

SXL_API void sxl_write_row(void* handle, uint32_t addr, const uint8_t* bytes) { sxl_write_rows(handle, addr, 1, bytes); }

SXL_API void sxl_read_row(void* handle, uint32_t addr, uint8_t* bytes) { sxl_read_rows(handle, addr, 1, bytes); }

// Write `count` words of `word_bytes` bytes each (little-endian) into memory `sel` of the load bus, from
// word `addr` on.
SXL_API void sxl_load(void* handle, uint32_t sel, uint32_t addr, uint32_t count, const uint8_t* bytes,
                      uint32_t word_bytes) {
    auto* sim = static_cast<Sim*>(handle);
    Vaccelerator* top = sim->top.get();
    top->load_sel = sel;
    top->load_we = 1;
    for (uint32_t i = 0; i < count; ++i) {
        top->load_addr = addr + i;
        put_bytes(top->load_data, bytes + static_cast<size_t>(i) * word_bytes, static_cast<int>(word_bytes));
        tick(sim);
    }
    top->load_we = 0;
    top->eval();
}

// Clock until `done` (returns 1) or, in step mode, until the controller pauses after an instruction
// (returns 0); -1 after `max_cycles`. Cycles are added to `*total` and to `histogram[pc]`. A paused cycle
// is not clocked here, so stepping counts exactly the cycles of a continuous run.
static int clock_until(Sim* sim, uint64_t max_cycles, uint64_t* histogram, uint32_t length, uint64_t* total) {
    Vaccelerator* top = sim->top.get();
    for (;;) {
        if (top->paused) return 0;
        const bool done = top->done;
        const uint32_t pc = top->pc;
        tick(sim);
        ++*total;
        if (pc < length) ++histogram[pc];
        if (done) return 1;
        if (*total > max_cycles) return -1;
    }
}

// Pulse `start` (run from instruction 0, or resume when paused) with `step` as given.
static void pulse_start(Sim* sim, int step) {
    Vaccelerator* top = sim->top.get();
    top->step = step ? 1 : 0;
    top->start = 1;
    tick(sim);
    top->start = 0;
    top->eval();
}

// Run (or resume) in step mode up to the end of the next instruction: 1 when the program has finished
// (HALT), 0 when paused after an instruction, -1 after `max_cycles` in all. `*total` accumulates cycles.
SXL_API int sxl_step(void* handle, uint64_t max_cycles, uint64_t* histogram, uint32_t length, uint64_t* total) {
    auto* sim = static_cast<Sim*>(handle);
    pulse_start(sim, 1);
    return clock_until(sim, max_cycles, histogram, length, total);
}

// Pulse `start` and clock until `done`. `histogram[pc]` (pc < length) is incremented for every cycle spent
// at that program counter. Returns the cycles from start to done, or -1 after `max_cycles` without done.
SXL_API int64_t sxl_run(void* handle, uint64_t max_cycles, uint64_t* histogram, uint32_t length) {
    auto* sim = static_cast<Sim*>(handle);
    pulse_start(sim, 0);
    uint64_t total = 0;
    return clock_until(sim, max_cycles, histogram, length, &total) == 1 ? static_cast<int64_t>(total) : -1;
}

// Start writing every following clock edge to the waveform file `path` (FST or VCD, as built); 0 on success.
SXL_API int sxl_trace_open(void* handle, const char* path) {
#if VM_TRACE
    auto* sim = static_cast<Sim*>(handle);
    if (sim->trace) sim->trace->close();
    sim->trace = std::make_unique<TraceFile>();
    sim->top->trace(sim->trace.get(), 99);
    sim->trace->open(path);
    dump(sim);
    return sim->trace->isOpen() ? 0 : -1;
#else
    (void)handle;
    (void)path;
    return -1;
#endif
}

SXL_API void sxl_trace_close(void* handle) {
#if VM_TRACE
    auto* sim = static_cast<Sim*>(handle);
    if (sim->trace) {
        sim->trace->close();
        sim->trace.reset();
    }
#else
    (void)handle;
#endif
}
