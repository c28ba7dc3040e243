package com.facesegtool.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Model input and output as the sidecar describes them: normalisation and int8/uint8
 * quantization of the input, and the argmax of the (possibly quantized) NHWC/NCHW output.
 *
 * <p>Arithmetic mirrors facesegtool.tflite_runner.TFLiteModel.preprocess step by step in float32
 * (x = (v / scale - mean) / std; q = rint(x / qscale + zp), ties to even, clamped), so the
 * tensors are bit-identical to the ones the Python side feeds the same model.
 */
public final class ModelIO {
    private ModelIO() {}

    /** Bytes per element of a sidecar dtype. */
    public static int dtypeSize(String dtype) {
        switch (dtype) {
            case "float32": return 4;
            case "float16": case "int16": return 2;
            case "int8": case "uint8": return 1;
            default: throw new IllegalArgumentException("unsupported tensor dtype " + dtype);
        }
    }

    /** Tensor types fillInput writes and argmax / scores read. */
    public static final java.util.List<String> SUPPORTED_DTYPES = java.util.Arrays.asList("float32", "int8", "uint8");

    /**
     * Throws IllegalArgumentException, naming the tensor and its type, when the model's input or
     * output is of a type this class cannot feed or read (an int16-I/O export, float16 I/O): call it
     * when the model is loaded, so the app says so at once instead of failing on the first frame.
     */
    public static void checkSupported(Sidecar sc) {
        if (!SUPPORTED_DTYPES.contains(sc.inputDtype) || !SUPPORTED_DTYPES.contains(sc.outputDtype)) {
            throw new IllegalArgumentException("model input " + sc.inputDtype + " / output " + sc.outputDtype
                    + ": the app feeds and reads only float32, int8 and uint8 tensors; install another export");
        }
    }

    /** A direct buffer in native order, sized for the model input. */
    public static ByteBuffer allocateInput(Sidecar sc) {
        int n = sc.inputHeight * sc.inputWidth * 3 * dtypeSize(sc.inputDtype);
        return ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder());
    }

    /** A direct buffer in native order, sized for the model output. */
    public static ByteBuffer allocateOutput(Sidecar sc) {
        int n = sc.outputHeight * sc.outputWidth * sc.numClasses * dtypeSize(sc.outputDtype);
        return ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder());
    }

    /** The real-valued input of one channel value v (0..255) of channel c, before quantization. */
    static float normalise(int v, int c, Sidecar sc) {
        float x = (float) v;
        if (sc.normalizationBaked) return x; // the model normalises inside
        return (x / (float) sc.scale - sc.mean[c]) / sc.std[c];
    }

    static int quantise(float x, Sidecar.Quant q, int min, int max) {
        double scale = q == null ? 1.0 : q.scale;
        int zp = q == null ? 0 : q.zeroPoint;
        float t = x / (float) scale + (float) zp;
        double r = Math.rint(t);
        return (int) Math.max(min, Math.min(max, r));
    }

    /**
     * Writes an ARGB image (exactly the model's input size) into {@code out} as the model's input
     * tensor; {@code out} is rewound and left ready for the interpreter.
     */
    public static void fillInput(int[] argb, Sidecar sc, ByteBuffer out) {
        int h = sc.inputHeight, w = sc.inputWidth;
        if (argb.length != h * w) {
            throw new IllegalArgumentException("image has " + argb.length + " pixels, model takes " + w + "x" + h);
        }
        boolean bgr = sc.channelOrder.equals("BGR");
        boolean nchw = sc.inputLayout.equals("NCHW");
        String dt = sc.inputDtype;
        out.rewind();
        for (int i = 0; i < h * w; i++) {
            int p = argb[i];
            int[] rgb = {(p >> 16) & 255, (p >> 8) & 255, p & 255};
            for (int c = 0; c < 3; c++) {
                int v = rgb[bgr ? 2 - c : c];
                float x = normalise(v, c, sc); // mean/std are in the model's channel order
                int index = nchw ? (c * h * w + i) : (i * 3 + c);
                switch (dt) {
                    case "float32":
                        out.putFloat(index * 4, x);
                        break;
                    case "int8":
                        out.put(index, (byte) quantise(x, sc.inputQuant, -128, 127));
                        break;
                    case "uint8":
                        out.put(index, (byte) quantise(x, sc.inputQuant, 0, 255));
                        break;
                    default:
                        throw new IllegalArgumentException("unsupported input dtype " + dt);
                }
            }
        }
        out.rewind();
    }

    /** Dequantizes one value: (q - zp) * scale. */
    public static float dequantize(int q, Sidecar.Quant quant) {
        return quant == null ? q : (float) ((q - quant.zeroPoint) * quant.scale);
    }

    /**
     * Class mask (one byte per pixel, row major, outputHeight x outputWidth) from the model output.
     * Quantized outputs are compared as integers: with scale > 0 dequantizing keeps the order, so
     * the argmax is the same. Ties go to the first class (as numpy's argmax); NaN counts as largest.
     */
    public static byte[] argmax(ByteBuffer output, Sidecar sc) {
        ByteBuffer buf = output.duplicate().order(output.order());
        int h = sc.outputHeight, w = sc.outputWidth, n = sc.numClasses;
        boolean nchw = sc.outputLayout.equals("NCHW");
        byte[] mask = new byte[h * w];
        String dt = sc.outputDtype;
        for (int i = 0; i < h * w; i++) {
            int best = 0;
            if (dt.equals("float32")) {
                float bv = buf.getFloat(4 * (nchw ? i : i * n));
                for (int c = 1; c < n; c++) {
                    float v = buf.getFloat(4 * (nchw ? c * h * w + i : i * n + c));
                    if (v > bv || (Float.isNaN(v) && !Float.isNaN(bv))) {
                        bv = v;
                        best = c;
                    }
                }
            } else if (dt.equals("int8") || dt.equals("uint8")) {
                boolean unsigned = dt.equals("uint8");
                int bv = Integer.MIN_VALUE;
                for (int c = 0; c < n; c++) {
                    byte b = buf.get(nchw ? c * h * w + i : i * n + c);
                    int v = unsigned ? (b & 255) : b;
                    if (v > bv) {
                        bv = v;
                        best = c;
                    }
                }
            } else {
                throw new IllegalArgumentException("unsupported output dtype " + dt);
            }
            mask[i] = (byte) best;
        }
        return mask;
    }

    /**
     * The model output as row major height x width x classes float scores (NHWC order whatever the
     * output layout): float32 as is, int8/uint8 dequantized as (float) (q - zp) * (float) scale, the
     * float32 steps of facesegtool.tflite_runner.TFLiteModel.dequantize. For the smoothing and the
     * whole-head merge, which need scores rather than a class.
     */
    public static float[] scores(ByteBuffer output, Sidecar sc) {
        return scores(output, sc, null);
    }

    /** As {@link #scores(ByteBuffer, Sidecar)}, into {@code reuse} when it has the right length (per-frame use). */
    public static float[] scores(ByteBuffer output, Sidecar sc, float[] reuse) {
        ByteBuffer buf = output.duplicate().order(output.order());
        int h = sc.outputHeight, w = sc.outputWidth, n = sc.numClasses;
        boolean nchw = sc.outputLayout.equals("NCHW");
        String dt = sc.outputDtype;
        float[] out = reuse != null && reuse.length == h * w * n ? reuse : new float[h * w * n];
        float scale = sc.outputQuant == null ? 1f : (float) sc.outputQuant.scale;
        int zp = sc.outputQuant == null ? 0 : sc.outputQuant.zeroPoint;
        for (int i = 0; i < h * w; i++) {
            for (int c = 0; c < n; c++) {
                int src = nchw ? c * h * w + i : i * n + c;
                float v;
                if (dt.equals("float32")) {
                    v = buf.getFloat(4 * src);
                } else if (dt.equals("int8") || dt.equals("uint8")) {
                    int q = dt.equals("uint8") ? buf.get(src) & 255 : buf.get(src);
                    v = sc.outputQuant == null ? q : (float) (q - zp) * scale;
                } else {
                    throw new IllegalArgumentException("unsupported output dtype " + dt);
                }
                out[i * n + c] = v;
            }
        }
        return out;
    }
}
