/**
 * Small helpers over `onnx-proto` for building graphs by hand (the GPT writer and graph
 * surgery use them). Tensors are stored as raw little-endian bytes.
 */
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type ValueInfo = onnxProto.onnx.IValueInfoProto;
export type TensorProto = onnxProto.onnx.ITensorProto;

export const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

export type Dim = number | string;
export type Attr = number | number[] | string | { float: number };

export function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  return { name, dims, dataType: DT.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function int64Tensor(name: string, dims: number[], values: number[]): TensorProto {
  const b = new BigInt64Array(values.map((v) => BigInt(v)));
  return { name, dims, dataType: DT.INT64, rawData: new Uint8Array(b.buffer) };
}

export function valueInfo(name: string, elemType: number, dims: Dim[]): ValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Decodes a tensor initializer back to floats (raw or float_data storage). */
export function tensorToFloat32(t: TensorProto): Float32Array {
  if (t.dataType !== DT.FLOAT) throw new Error(`tensor ${t.name}: not float32`);
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData); // aligned copy
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}

/** Accumulates nodes and initializers with unique names. */
export class GraphBuilder {
  nodes: NodeProto[] = [];
  initializers: TensorProto[] = [];
  private counter = 0;

  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  node(op: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs?: string[] | number): string[] {
    const outs = Array.isArray(outputs) ? outputs : Array.from({ length: outputs ?? 1 }, () => this.fresh(op.toLowerCase()));
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: AT.INTS, ints: v };
      if (typeof v === 'object') return { name, type: AT.FLOAT, f: v.float };
      return { name, type: AT.INT, i: v };
    });
    this.nodes.push({ opType: op, input: inputs, output: outs, name: this.fresh(`n_${op}`), attribute });
    return outs;
  }

  /** One-output node. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}, output?: string): string {
    return this.node(op, inputs, attrs, output ? [output] : 1)[0];
  }

  constF(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh('const_f');
    this.initializers.push(floatTensor(name, dims, Float32Array.from(values)));
    return name;
  }

  constI64(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh('const_i');
    this.initializers.push(int64Tensor(name, dims, values));
    return name;
  }

  weight(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }
}

export function makeModel(graph: GraphProto, opset = 17, producer = 'flowtune'): ModelProto {
  return onnx.ModelProto.create({
    irVersion: 8,
    producerName: producer,
    opsetImport: [{ domain: '', version: opset }],
    graph,
  });
}

export function encodeModel(m: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(m).finish();
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}
