// C API around the Verilated link top (hdl/link/top.py: UART pins + link controller + accelerator), loaded by
// sim/link_sim.py with ctypes: a simulated serial port.
//
// The host's side of the UART lives here so that no Python runs per clock: bytes the host writes are queued
// and shifted onto the design's `rx` pin (start bit, 8 data bits LSB first, stop bit, `divisor` clocks
// each, optionally a random idle gap after each byte), and the design's `tx` pin is decoded by a receiver
// that samples the middle of every bit. `sxl_link_transfer` queues bytes and clocks the design until enough
// bytes came back (or a cycle budget is spent). Inputs change only while the clock is low.

#include <cstdint>
#include <deque>
#include <memory>

#include "Vlink_top.h"
#include "verilated.h"

#define SXL_API extern "C" __attribute__((visibility("default")))

namespace {

struct Link {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vlink_top> top;
    uint32_t divisor = 16;
    uint64_t cycles = 0;
    // host transmitter
    std::deque<uint8_t> outgoing;
    int out_bit = -1;  // bit being sent (0 = start .. 9 = stop), -1 idle
    uint32_t out_timer = 0;
    uint32_t out_frame = 0x3FF;
    uint32_t gap_left = 0;
    uint32_t max_gap = 0;
    uint64_t random = 0x9E3779B97F4A7C15ull;
    // host receiver
    std::deque<uint8_t> incoming;
    int in_state = 0;  // 0 idle, 1 start bit, 2 data, 3 stop bit
    uint32_t in_timer = 0;
    int in_bit = 0;
    uint32_t in_shift = 0;
    uint64_t framing_errors = 0;
};

uint32_t next_random(Link* link) {  // xorshift64
    link->random ^= link->random << 13;
    link->random ^= link->random >> 7;
    link->random ^= link->random << 17;
    return static_cast<uint32_t>(link->random >> 32);
}

// The level the host drives on `rx` this clock.
int host_line(Link* link) {
    if (link->out_bit < 0) {
        if (link->gap_left > 0) {
            --link->gap_left;
            return 1;
        }
        if (link->outgoing.empty()) return 1;
        link->out_frame = (1u << 9) | (static_cast<uint32_t>(link->outgoing.front()) << 1);
        link->outgoing.pop_front();
        link->out_bit = 0;
        link->out_timer = link->divisor;
    }
    const int level = (link->out_frame >> link->out_bit) & 1;
    if (--link->out_timer == 0) {
        link->out_timer = link->divisor;
        if (++link->out_bit == 10) {
            link->out_bit = -1;
            link->gap_left = link->max_gap ? next_random(link) % (link->max_gap + 1) : 0;
        }
    }
    return level;
}

// Decode the device's `tx` pin, one sample per clock.
void host_receive(Link* link, int level) {
    switch (link->in_state) {
        case 0:
            if (!level) {
                link->in_state = 1;
                link->in_timer = link->divisor / 2;
            }
            break;
        case 1:
            if (--link->in_timer == 0) {
                if (level) {
                    link->in_state = 0;
                } else {
                    link->in_state = 2;
                    link->in_bit = 0;
                    link->in_shift = 0;
                    link->in_timer = link->divisor;
                }
            }
            break;
        case 2:
            if (--link->in_timer == 0) {
                link->in_shift |= static_cast<uint32_t>(level) << link->in_bit;
                link->in_timer = link->divisor;
                if (++link->in_bit == 8) link->in_state = 3;
            }
            break;
        default:
            if (--link->in_timer == 0) {
                if (level) {
                    link->incoming.push_back(static_cast<uint8_t>(link->in_shift));
                } else {
                    ++link->framing_errors;
                }
                link->in_state = 0;
            }
    }
}

inline void tick(Link* link) {
    Vlink_top* top = link->top.get();
    top->rx = host_line(link);
    top->clk = 1;
    top->eval();
    top->clk = 0;
    top->eval();
    ++link->cycles;
    host_receive(link, top->tx);
}

}  // namespace

// Create the design with the baud divisor (clocks per bit) and reset it.
SXL_API void* sxl_link_create(uint32_t divisor) {
    auto* link = new Link;
    link->context = std::make_unique<VerilatedContext>();
    link->top = std::make_unique<Vlink_top>(link->context.get(), "link_top");
    link->divisor = divisor;
    Vlink_top* top = link->top.get();
    top->clk = 0;
    top->rx = 1;
    top->divisor = divisor;
    top->rst = 1;
    top->eval();
    top->clk = 1;
    top->eval();
    top->clk = 0;
    top->rst = 0;
    top->eval();
    return link;
}

SXL_API void sxl_link_destroy(void* handle) {
    auto* link = static_cast<Link*>(handle);
    if (link == nullptr) return;
    link->top->final();
    delete link;
}

// Idle gaps of 0..max_gap clocks (uniform, seeded) after every byte the host sends.
SXL_API void sxl_link_gaps(void* handle, uint32_t max_gap, uint64_t seed) {
    auto* link = static_cast<Link*>(handle);
    link->max_gap = max_gap;
    link->random = seed ? seed : 0x9E3779B97F4A7C15ull;
}

// Queue `count` bytes for the device, then clock until `want` bytes came back from it (or `max_cycles` more
// clocks passed); move up to `want` received bytes into `received` and return how many.
SXL_API uint32_t sxl_link_transfer(void* handle, const uint8_t* bytes, uint32_t count, uint8_t* received,
                                   uint32_t want, uint64_t max_cycles) {
    auto* link = static_cast<Link*>(handle);
    for (uint32_t i = 0; i < count; ++i) link->outgoing.push_back(bytes[i]);
    const uint64_t stop = link->cycles + max_cycles;
    while (link->incoming.size() < want && link->cycles < stop) tick(link);
    uint32_t n = 0;
    while (n < want && !link->incoming.empty()) {
        received[n++] = link->incoming.front();
        link->incoming.pop_front();
    }
    return n;
}

// Clocks simulated since creation.
SXL_API uint64_t sxl_link_cycles(void* handle) { return static_cast<Link*>(handle)->cycles; }

// Bytes from the device whose stop bit was low.
SXL_API uint64_t sxl_link_framing_errors(void* handle) { return static_cast<Link*>(handle)->framing_errors; }
