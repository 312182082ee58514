"""The integer model as a drop-in replacement for the float one.

The canonical form takes integer codes and returns integer codes: the input quantization and the ops
after the last integer tensor (DequantizeLinear, Softmax) are the host's. For the file ``systolix
quantize`` writes, those edges are put back around the canonical graph, so the model takes the same float
input and gives the same kind of output as the original, while every compute layer inside is an integer
op that onnxruntime runs exactly on any x86 CPU.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from systolix.errors import SystolixError
from systolix.frontend.canonical import CanonicalModel


def _chain_to(original: onnx.GraphProto, start: str, target: str) -> list[onnx.NodeProto]:
    """The nodes of ``original`` leading from tensor ``start`` to tensor ``target`` (a single-input chain)."""
    producers = {o: n for n in original.node for o in n.output}
    chain, tensor = [], target
    while tensor != start:
        node = producers.get(tensor)
        if node is None or len(chain) > 16:
            raise SystolixError(f"cannot find the host ops between {start!r} and output {target!r}")
        chain.append(node)
        tensor = node.input[0]
    return chain[::-1]


def with_host_edges(canon: CanonicalModel, original: onnx.ModelProto) -> onnx.ModelProto:
    """``canon.model`` with the original float inputs (quantized by QuantizeLinear) and output ops restored."""
    model = onnx.ModelProto()
    model.CopyFrom(canon.model)
    graph = model.graph
    inits = {i.name: i for i in original.graph.initializer}
    orig_inputs = {vi.name: vi for vi in original.graph.input}
    orig_outputs = {vi.name: vi for vi in original.graph.output}
    head, tail, extra_inits = [], [], []
    new_inputs = []
    for vi in graph.input:
        if vi.name not in canon.input_map:
            new_inputs.append(vi)
            continue
        source = orig_inputs[canon.input_map[vi.name]]
        prefix = getattr(canon, "input_prefix", {}).get(vi.name)
        if prefix is not None:  # the host's elementwise preprocessing, put back as it was
            head += list(prefix.model.graph.node)
            extra_inits += list(prefix.model.graph.initializer)
            new_inputs.append(source)
            continue
        scale, zp, dtype = canon.input_quant[vi.name]
        s_name, z_name = f"{vi.name}_host_scale", f"{vi.name}_host_zero_point"
        extra_inits += [numpy_helper.from_array(np.array(scale, np.float32), s_name),
                        numpy_helper.from_array(np.array(zp, dtype=np.dtype(dtype)), z_name)]
        head.append(helper.make_node("QuantizeLinear", [source.name, s_name, z_name], [vi.name],
                                     name=f"{vi.name}_host_quantize"))
        new_inputs.append(source)
    new_outputs = []
    for vi in graph.output:
        target = canon.output_map.get(vi.name, vi.name)
        if target == vi.name or target not in orig_outputs:
            new_outputs.append(vi)
            continue
        chain = _chain_to(original.graph, vi.name, target)
        for node in chain:
            tail.append(node)
            extra_inits += [inits[n] for n in node.input if n in inits]
        new_outputs.append(orig_outputs[target])
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.extend(new_inputs)
    del graph.output[:]
    graph.output.extend(new_outputs)
    have = {i.name for i in graph.initializer}
    for init in extra_inits:
        if init.name not in have:
            graph.initializer.append(init)
            have.add(init.name)
    onnx.checker.check_model(model)
    return model
