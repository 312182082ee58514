"""The graph normaliser: each rewrite on the kind of file that needs it, reported, onnxruntime's result kept."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.cli import main
from systolix.frontend.importer import import_model
from systolix.frontend.normalize import normalize
from systolix.frontend.reference import reference_session


def _conv_fc(batch, *, ir_version=8, opset=13, initializer_inputs=False):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    fw = numpy_helper.from_array(rng.normal(0, 0.3, (4 * 6 * 6, 10)).astype(np.float32), "fw")
    shape = numpy_helper.from_array(np.array([batch, -1], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]), helper.make_node("MatMul", ["f", "fw"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])]
    if initializer_inputs:
        inputs += [helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
                              [w, fw, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)


def test_ir_version_newer_than_onnxruntime_reads_is_lowered():
    model = _conv_fc(1, ir_version=14)
    with pytest.raises(Exception, match="IR version"):
        reference_session(model)
    out = normalize(model, quantized=False)
    assert out.model.ir_version == 13
    assert [f.name for f in out.fired] == ["lower-ir-version"]
    reference_session(out.model)  # loads now


def test_make_model_defaults_newest_opset_and_ir_are_lowered():
    # helper.make_model without opset_imports writes the newest opset (28) and IR 14: onnxruntime 1.31 refuses
    # both. No op of this graph changed since opset 26: the opset is lowered, then the IR version.
    model = _conv_fc(1)
    graph = model.graph
    model = helper.make_model(graph)
    assert model.opset_import[0].version > 26 and model.ir_version > 13
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime's own exception type)
        reference_session(model)
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["lower-opset", "lower-ir-version"]
    assert out.model.opset_import[0].version == 26 and out.model.ir_version == 13
    reference_session(out.model)


def test_newest_opset_not_lowered_when_an_op_changed():
    # An op whose definition changed after opset 26 keeps the model as it is (onnxruntime then says why).
    from onnx import defs

    from systolix.frontend.normalize.lower_opset import LowerOpset, _only_types_added

    newest = defs.onnx_opset_version()
    changed = next((s.name for s in defs.get_all_schemas_with_history() if s.domain == ""
                    and 26 < s.since_version <= newest and not s.deprecated
                    and not _only_types_added(s.name, newest)), None)
    if changed is None:
        pytest.skip(f"no op of the default domain changed between opset 26 and {newest}")
    node = helper.make_node(changed, [], [])
    graph = helper.make_graph([node], "g", [], [])
    model = helper.make_model(graph)
    assert LowerOpset().apply(model) is None


def test_fixed_batch_becomes_symbolic_and_runs_any_batch():
    model = _conv_fc(5)
    out = normalize(model, quantized=False)
    (fired,) = out.fired
    assert fired.name == "symbolic-batch" and fired.applied and "fixed batch 5" in fired.detail
    x = np.random.default_rng(1).normal(0, 1, (5, 3, 8, 8)).astype(np.float32)
    (want,) = reference_session(model).run(None, {"x": x})
    session = reference_session(out.model)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], want)
    (one,) = session.run(None, {"x": x[:1]})  # and any other batch
    np.testing.assert_array_equal(one, want[:1])


def test_initializers_listed_as_inputs_are_dropped():
    out = normalize(_conv_fc(1, initializer_inputs=True), quantized=False)
    assert [f.name for f in out.fired] == ["drop-initializer-inputs"]
    assert [i.name for i in out.model.graph.input] == ["x"]


def test_old_opset_is_upgraded(tmp_path):
    """Opset 9 Gemm with the broadcast-era attributes of old exporters -> opset 13 for the importer."""
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (10, 12)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(0, 0.3, (10,)).astype(np.float32), "b")
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Relu", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=4)
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["upgrade-opset"]
    assert out.model.opset_import[0].version == 13
    path = tmp_path / "old.onnx"
    onnx.save(model, str(path))
    assert len(import_model(path).ir.layers) >= 1


def test_inspect_reports_the_rewrites(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_fc(5, ir_version=14), str(path))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "normalised: lower-ir-version: IR version 14 -> 13" in out
    assert "normalised: symbolic-batch: fixed batch 5 -> symbolic N (inputs, outputs, 1 Reshape target(s))" in out


def test_quantized_graph_must_keep_onnxruntime_integer_result(monkeypatch):
    """A rewrite that changes a quantized graph's integer outputs is not applied, and says so."""
    from systolix.frontend import normalize as package

    class Breaks:
        name = "breaks"

        def apply(self, model):
            out = onnx.ModelProto()
            out.CopyFrom(model)
            for init in out.graph.initializer:
                if init.name == "yz":
                    init.CopyFrom(numpy_helper.from_array(np.uint8(99), "yz"))
            return out, "changes the output zero point"

    consts = [numpy_helper.from_array(v, n) for n, v in (("s", np.float32(0.1)), ("z", np.uint8(3)),
                                                         ("ys", np.float32(0.2)), ("yz", np.uint8(7)))]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["d"]),
             helper.make_node("QuantizeLinear", ["d", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, ["N", 4])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    monkeypatch.setattr(package, "REWRITES", (Breaks(),))
    out = normalize(model, quantized=True)
    (fired,) = out.fired
    assert not fired.applied and fired.line().startswith("NOT APPLIED: breaks: changes the output zero point [")
    assert "output elements differ" in fired.check
    assert out.model.graph.initializer[3] == model.graph.initializer[3]


def _shape_flatten(style: str):
    """Conv -> Relu -> a Reshape whose target is computed from Shape, as exporters write a dynamic flatten:
    ``tf2onnx`` (Keras 3 Flatten: [batch, 144] from Shape -> Slice -> Concat), ``torch`` (``x.view(x.size(0),
    -1)``: [batch, -1] from Shape -> Gather -> Unsqueeze -> Concat) or ``other`` (the target reads an
    activation's values: not a shape computation)."""
    model = _conv_fc(1)
    graph = model.graph
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"  # a symbolic batch, as exported
    del graph.initializer[2]  # the constant target
    c = numpy_helper.from_array
    if style == "tf2onnx":
        graph.initializer.extend([c(np.array([0], np.int64), "s0"), c(np.array([1], np.int64), "s1"),
                                  c(np.array([144], np.int64), "rest")])
        nodes = [helper.make_node("Shape", ["r"], ["sh"]), helper.make_node("Slice", ["sh", "s0", "s1"], ["b"]),
                 helper.make_node("Concat", ["b", "rest"], ["shape"], axis=0)]
    elif style == "torch":
        graph.initializer.extend([c(np.array(0, np.int64), "zero"), c(np.array([0], np.int64), "ax"),
                                  c(np.array([-1], np.int64), "minus1")])
        nodes = [helper.make_node("Shape", ["r"], ["sh"]), helper.make_node("Gather", ["sh", "zero"], ["b0"], axis=0),
                 helper.make_node("Unsqueeze", ["b0", "ax"], ["b"]),
                 helper.make_node("Concat", ["b", "minus1"], ["shape"], axis=0)]
    else:
        graph.initializer.extend([c(np.array([1, 144], np.int64), "base")])
        nodes = [helper.make_node("ReduceMax", ["r"], ["m"], keepdims=0), helper.make_node("Cast", ["m"], ["mi"], to=7),
                 helper.make_node("Mul", ["base", "mi"], ["shape"])]
    for i, node in enumerate(nodes):
        graph.node.insert(2 + i, node)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("style,target", [("tf2onnx", [-1, 144]), ("torch", [0, -1])])
def test_reshape_target_from_shape_is_folded(style, target):
    model = _shape_flatten(style)
    with pytest.raises(Exception, match="op Shape is not supported"):
        from systolix.frontend.importer import import_graph

        import_graph(model, quantized=False)
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["fold-shape-computation"]
    assert f"folded to constants ({target};" in out.fired[0].detail and "max |difference| 0" in out.fired[0].check
    assert [n.op_type for n in out.model.graph.node] == ["Conv", "Relu", "Reshape", "MatMul"]
    assert [layer.op for layer in import_model(model).ir.layers] == ["Conv", "Relu", "Reshape", "MatMul"]
    x = np.random.default_rng(1).normal(0, 1, (5, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(reference_session(out.model).run(None, {"x": x})[0],
                                  reference_session(model).run(None, {"x": x})[0])


def test_reshape_target_from_values_is_not_folded():
    out = normalize(_shape_flatten("other"), quantized=False)
    assert "fold-shape-computation" not in [f.name for f in out.fired]


def test_quantize_model_with_a_shape_computed_flatten(tmp_path):
    from systolix.quantize.ptq import quantize_model

    onnx.save(_shape_flatten("tf2onnx"), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).normal(0, 1, (16, 3, 8, 8)).astype(np.float32))
    quantize_model(tmp_path / "m.onnx", tmp_path / "c.npz", tmp_path / "q.onnx")
    assert "Shape" not in [n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    assert import_model(tmp_path / "q.onnx").ir.quantized


def _weights_computed_in_graph(quantized_input: bool = False) -> onnx.ModelProto:
    """A fully connected layer whose weight is stored transposed (CNTK, old exporters) and whose bias is scaled by
    a Constant: onnxruntime folds both when it loads the model; the importer wants initializers."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Transpose", ["wt"], ["w"], perm=[1, 0]),
             helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.float32(2.0))),
             helper.make_node("Mul", ["bias", "two"], ["b2"]),
             helper.make_node("Unsqueeze", ["b2", "zero"], ["b3"]),
             helper.make_node("MatMul", ["f", "w"], ["m"]),
             helper.make_node("Add", ["m", "b3"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(rng.normal(0, 1, (10, 16)).astype(np.float32), "wt"),
                               numpy_helper.from_array(rng.normal(0, 1, 10).astype(np.float32), "bias"),
                               numpy_helper.from_array(np.array([0], np.int64), "zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_arithmetic_on_constants_is_folded_into_initializers():
    model = _weights_computed_in_graph()
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["fold-constants"]
    assert "4 node(s)" in out.fired[0].detail and "(Constant, Mul, Transpose, Unsqueeze)" in out.fired[0].detail
    assert "max |difference| 0" in out.fired[0].check
    assert [n.op_type for n in out.model.graph.node] == ["Flatten", "MatMul", "Add"]
    inits = {i.name: numpy_helper.to_array(i) for i in out.model.graph.initializer}
    np.testing.assert_array_equal(inits["w"], numpy_helper.to_array(model.graph.initializer[0]).T)
    assert "wt" not in inits and "bias" not in inits  # read only by the folded nodes
    x = np.random.default_rng(1).normal(0, 1, (3, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(reference_session(out.model).run(None, {"x": x})[0],
                                  reference_session(model).run(None, {"x": x})[0])
    assert [layer.op for layer in import_model(model).ir.layers] == ["Flatten", "MatMul"]


def test_quantized_weights_and_constant_nodes_alone_are_not_folded():
    # a DequantizeLinear of an int8 weight stays (the importer reads its scale and zero point); a Constant read
    # directly by an op is not a reason to rewrite
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([-1, 16], np.int64))),
             helper.make_node("Reshape", ["x", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(rng.integers(-127, 128, (16, 10)).astype(np.int8), "wq"),
                               numpy_helper.from_array(np.float32(0.01), "ws"),
                               numpy_helper.from_array(np.int8(0), "wz")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert "fold-constants" not in [f.name for f in normalize(model, quantized=True).fired]


def _qdq_conv(**make_model) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("Conv", ["xd", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("QuantizeLinear", ["c", "s2", "z"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "s2", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(0), "z"),
         numpy_helper.from_array(np.float32(0.1), "s2"), numpy_helper.from_array(np.float32(0.01), "ws"),
         numpy_helper.from_array(rng.integers(-100, 100, (2, 1, 3, 3)).astype(np.int8), "wq"),
         numpy_helper.from_array(np.int8(0), "wz")])
    return helper.make_model(graph, **make_model)


def test_qdq_graph_at_the_newest_opset_is_lowered_when_only_types_were_added(tmp_path):
    # QuantizeLinear/DequantizeLinear-28 only admit more (float6) types than at 26; an int8 graph means the same
    model = _qdq_conv()
    assert model.opset_import[0].version >= 28
    out = normalize(model, quantized=True)
    assert [f.name for f in out.fired] == ["lower-opset", "lower-ir-version"]
    assert "DequantizeLinear, QuantizeLinear only gained types since" in out.fired[0].detail
    onnx.save(model, str(tmp_path / "qdq28.onnx"))
    assert main(["simulate", str(tmp_path / "qdq28.onnx"), "--random", "8", "--backend", "golden"]) == 0


def test_an_op_whose_text_changed_is_not_lowered():
    from systolix.frontend.normalize.lower_opset import _only_types_added

    assert _only_types_added("QuantizeLinear", 28) and _only_types_added("DequantizeLinear", 28)
    assert not _only_types_added("Mod", 28)  # same types, a changed definition
    assert not _only_types_added("SpaceToDepth", 28)


def _conv_chain_conv(perm_back) -> onnx.ModelProto:
    """Conv -> Transpose(0,2,3,1) -> Reshape(N,L,C) -> Unsqueeze(1) -> Transpose(perm_back) -> Conv -> ReduceMean
    over the channels-last length (tf2onnx's Conv1D between layers, and GlobalAveragePooling1D)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 3]),
             helper.make_node("Transpose", ["c1"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t1", "nlc"], ["r1"]),
             helper.make_node("Unsqueeze", ["r1", "one"], ["u1"]),
             helper.make_node("Transpose", ["u1"], ["t2"], perm=perm_back),
             helper.make_node("Conv", ["t2", "w2"], ["c2"], kernel_shape=[1, 1]),
             helper.make_node("Transpose", ["c2"], ["t3"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t3", "nlc2"], ["r3"]),
             helper.make_node("ReduceMean", ["r3"], ["y"], axes=[1], keepdims=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(rng.normal(0, 1, (4, 3, 1, 3)).astype(np.float32), "w1"),
         numpy_helper.from_array(rng.normal(0, 1, (4, 4, 1, 1)).astype(np.float32), "w2"),
         numpy_helper.from_array(np.array([-1, 14, 4], np.int64), "nlc"),
         numpy_helper.from_array(np.array([-1, 14, 4], np.int64), "nlc2"),
         numpy_helper.from_array(np.array([1], np.int64), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_layout_round_trips_cancel_and_channels_last_mean_becomes_a_global_pool():
    model = _conv_chain_conv([0, 3, 1, 2])
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["cancel-layout-round-trips", "reduce-mean-as-global-pool"]
    assert "1 chain(s) of 4" in out.fired[0].detail
    assert [n.op_type for n in out.model.graph.node] == ["Conv", "Conv", "GlobalAveragePool", "Flatten"]
    x = np.random.default_rng(1).normal(0, 1, (3, 3, 1, 16)).astype(np.float32)
    want = reference_session(model).run(None, {"x": x})[0]
    got = reference_session(out.model).run(None, {"x": x})[0]
    assert got.shape == want.shape and float(np.abs(got - want).max()) < 1e-5  # float graph: summation order
    assert [layer.op for layer in import_model(model).ir.layers] == ["Conv", "Conv", "GlobalAveragePool", "Flatten"]


def test_a_chain_that_moves_elements_is_kept():
    model = _conv_chain_conv([0, 3, 2, 1])  # NC1L -> N1LC -> NLC -> N1LC -> NCL1: the length axis moved
    out = normalize(model, quantized=False)
    # only the Reshape -> Unsqueeze pair inside the chain is a round trip; both Transposes stay
    assert out.fired[0].name == "cancel-layout-round-trips" and "1 chain(s) of 2" in out.fired[0].detail
    assert [n.op_type for n in out.model.graph.node][:4] == ["Conv", "Transpose", "Transpose", "Conv"]
    x = np.random.default_rng(1).normal(0, 1, (3, 3, 1, 16)).astype(np.float32)
    got, want = reference_session(out.model).run(None, {"x": x})[0], reference_session(model).run(None, {"x": x})[0]
    assert float(np.abs(got - want).max()) < 1e-5  # float graph; the mean is summed in another order


@pytest.mark.parametrize("opset", [13, 18])  # axes as an attribute, then as an input
def test_torch_mean_over_spatial_axes_becomes_a_global_pool(opset, tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.3, (8, 4)).astype(np.float32), "fw")]
    if opset >= 18:
        mean = helper.make_node("ReduceMean", ["r", "axes"], ["m"], keepdims=0)
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    else:
        mean = helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["r"]),
             mean, helper.make_node("MatMul", ["m", "fw"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["reduce-mean-as-global-pool"]
    onnx.save(model, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "c.npz", x=rng.normal(0, 1, (16, 3, 10, 10)).astype(np.float32))
    assert main(["quantize", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "c.npz"),
                 "-o", str(tmp_path / "q.onnx")]) == 0
    assert main(["simulate", str(tmp_path / "q.onnx"), "--random", "6", "--backend", "golden"]) == 0


def test_round_trips_around_elementwise_ops_cancel_and_keep_the_ops():
    # Transpose(NCHW->NHWC) -> Relu -> Sigmoid -> Transpose back: the layout shuffle goes, the activations stay
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Transpose", ["c"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node("Relu", ["t1"], ["r"]),
             helper.make_node("Sigmoid", ["r"], ["s"]),
             helper.make_node("Transpose", ["s"], ["t2"], perm=[0, 3, 1, 2]),
             helper.make_node("MaxPool", ["t2"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4, 4])],
                              [numpy_helper.from_array(rng.normal(0, 1, (4, 3, 3, 3)).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["cancel-layout-round-trips"]
    assert [n.op_type for n in out.model.graph.node] == ["Conv", "Relu", "Sigmoid", "MaxPool"]
    x = rng.normal(0, 1, (3, 3, 10, 10)).astype(np.float32)
    np.testing.assert_array_equal(reference_session(out.model).run(None, {"x": x})[0],
                                  reference_session(model).run(None, {"x": x})[0])


def _scaled_input(pads=(0, 0, 0, 0)) -> onnx.ModelProto:
    """Keras' Rescaling(1/255) and Normalization on an NHWC input, then tf2onnx's Transpose and the first Conv; an
    extra graph input nothing reads (tf2onnx lists a Normalization layer's captured variables)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Mul", ["x", "k"], ["m"]), helper.make_node("Sub", ["m", "mean"], ["s"]),
             helper.make_node("Div", ["s", "std"], ["d"]),
             helper.make_node("Transpose", ["d"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w", "b"], ["y"], kernel_shape=[3, 3], pads=list(pads))]
    size = 8 + pads[0] + pads[2] - 2
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 3]),
                     helper.make_tensor_value_info("unused", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, size, size])],
        [numpy_helper.from_array(np.float32(1 / 255), "k"),
         numpy_helper.from_array(np.array([[[[0.5, 0.4, 0.3]]]], np.float32), "mean"),
         numpy_helper.from_array(np.array([[[[0.2, 0.25, 0.3]]]], np.float32), "std"),
         numpy_helper.from_array(rng.normal(0, 1, (4, 3, 3, 3)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.normal(0, 1, 4).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_input_scaling_moves_before_the_transpose_and_folds_into_the_first_conv():
    model = _scaled_input()
    out = normalize(model, quantized=False)
    assert [f.name for f in out.fired] == ["drop-unused-inputs", "hoist-transpose", "fold-input-scaling"]
    assert "(Mul, Sub, Div, per channel" in out.fired[2].detail
    assert [n.op_type for n in out.model.graph.node] == ["Transpose", "Conv"]
    assert [i.name for i in out.model.graph.input] == ["x"]
    x = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3)).astype(np.float32)
    want = reference_session(model).run(None, {"x": x, "unused": np.zeros(3, np.float32)})[0]
    got = reference_session(out.model).run(None, {"x": x})[0]
    assert float(np.abs(got - want).max()) < 1e-3 * float(np.abs(want).max())  # float: folded in float64


def test_input_scaling_before_a_padded_conv_is_not_folded():
    out = normalize(_scaled_input(pads=(1, 1, 1, 1)), quantized=False)
    names = [f.name for f in out.fired]
    assert "hoist-transpose" in names and "fold-input-scaling" not in names  # padding would meet the offset
    assert [n.op_type for n in out.model.graph.node] == ["Transpose", "Mul", "Sub", "Div", "Conv"]
