package com.facesegtool.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * The sidecar JSON that {@code facesegtool export} writes next to each .tflite: everything the
 * app needs to feed the model and read its output, so a new model drops in without code changes.
 *
 * <pre>
 * {"format":"facesegtool-sidecar","version":1,"classes":[...],"palette":[[r,g,b],...],
 *  "input":{"shape":[1,H,W,3],"layout":"NHWC","channel_order":"RGB","dtype":"float32|int8|uint8",
 *           "mean":[..],"std":[..],"scale":255.0,"normalization_baked":false,
 *           "quantization":{"scale":s,"zero_point":z}|null},
 *  "output":{"shape":[1,H,W,C],"layout":"NHWC","dtype":"...","quantization":...|null}, ...}
 * </pre>
 */
public final class Sidecar {
    public static final String FORMAT = "facesegtool-sidecar";

    /** Affine quantization of one tensor: real = (q - zeroPoint) * scale. */
    public static final class Quant {
        public final double scale;
        public final int zeroPoint;

        public Quant(double scale, int zeroPoint) {
            this.scale = scale;
            this.zeroPoint = zeroPoint;
        }
    }

    public final List<String> classes;
    /** RGB per class, 0xRRGGBB. */
    public final int[] palette;
    public final int inputHeight, inputWidth;
    public final String inputLayout, channelOrder, inputDtype;
    public final float[] mean, std;
    public final double scale;
    public final boolean normalizationBaked;
    public final Quant inputQuant; // null: float input (or raw integers)
    public final int outputHeight, outputWidth, numClasses;
    public final String outputLayout, outputDtype;
    public final Quant outputQuant;
    public final String variant, model;

    private Sidecar(Map<String, Object> root) {
        if (!FORMAT.equals(root.get("format"))) {
            throw new IllegalArgumentException("not a facesegtool sidecar (no \"format\": \"" + FORMAT + "\")");
        }
        List<String> names = new ArrayList<>();
        for (Object o : list(root, "classes")) names.add((String) o);
        classes = Collections.unmodifiableList(names);
        palette = readPalette(root.get("palette"), names.size());
        variant = root.get("variant") instanceof String ? (String) root.get("variant") : "";
        model = root.get("model") instanceof String ? (String) root.get("model") : "";

        Map<String, Object> in = map(root, "input");
        inputLayout = string(in, "layout", "NHWC");
        int[] ish = shape(in, "input");
        boolean inNhwc = inputLayout.equals("NHWC");
        inputHeight = inNhwc ? ish[1] : ish[2];
        inputWidth = inNhwc ? ish[2] : ish[3];
        if ((inNhwc ? ish[3] : ish[1]) != 3) throw new IllegalArgumentException("input is not a 3-channel image");
        channelOrder = string(in, "channel_order", "RGB").toUpperCase();
        inputDtype = string(in, "dtype", null);
        mean = floats(in, "mean");
        std = floats(in, "std");
        scale = in.get("scale") == null ? 255.0 : ((Number) in.get("scale")).doubleValue();
        normalizationBaked = Boolean.TRUE.equals(in.get("normalization_baked"));
        inputQuant = quant(in.get("quantization"), "input");

        Map<String, Object> out = map(root, "output");
        outputLayout = string(out, "layout", "NHWC");
        int[] osh = shape(out, "output");
        boolean outNhwc = outputLayout.equals("NHWC");
        outputHeight = outNhwc ? osh[1] : osh[2];
        outputWidth = outNhwc ? osh[2] : osh[3];
        numClasses = outNhwc ? osh[3] : osh[1];
        outputDtype = string(out, "dtype", null);
        outputQuant = quant(out.get("quantization"), "output");
        if (numClasses != classes.size()) {
            throw new IllegalArgumentException("output has " + numClasses + " channels but " + classes.size() + " classes");
        }
    }

    /** Parses sidecar JSON text; IllegalArgumentException says what is wrong. */
    public static Sidecar parse(String json) {
        Object root = MiniJson.parse(json);
        if (!(root instanceof Map)) throw new IllegalArgumentException("sidecar is not a JSON object");
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) root;
        try {
            return new Sidecar(m);
        } catch (ClassCastException | NullPointerException e) {
            throw new IllegalArgumentException("sidecar field of the wrong type or missing: " + e.getMessage(), e);
        }
    }

    /** Index of a class by name, or -1 (effects find "hair", "lips", ... this way). */
    public int classIndex(String name) {
        return classes.indexOf(name);
    }

    public boolean inputIsFloat() {
        return inputDtype.startsWith("float");
    }

    private static int[] readPalette(Object o, int n) {
        int[] p = new int[n];
        if (!(o instanceof List)) {
            for (int i = 0; i < n; i++) p[i] = 0x808080; // no palette: grey
            return p;
        }
        List<?> rows = (List<?>) o;
        for (int i = 0; i < n; i++) {
            if (i >= rows.size()) {
                p[i] = 0x808080;
                continue;
            }
            List<?> rgb = (List<?>) rows.get(i);
            int r = ((Number) rgb.get(0)).intValue(), g = ((Number) rgb.get(1)).intValue(), b = ((Number) rgb.get(2)).intValue();
            p[i] = (r << 16) | (g << 8) | b;
        }
        return p;
    }

    private static Quant quant(Object o, String what) {
        if (o == null) return null;
        @SuppressWarnings("unchecked")
        Map<String, Object> q = (Map<String, Object>) o;
        Object s = q.get("scale");
        if (s instanceof List) throw new IllegalArgumentException(what + ": per-axis quantization is not supported for model input/output");
        double sc = ((Number) s).doubleValue();
        if (!(sc > 0)) throw new IllegalArgumentException(what + ": quantization scale must be > 0");
        return new Quant(sc, ((Number) q.get("zero_point")).intValue());
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Map<String, Object> m, String key) {
        Object o = m.get(key);
        if (!(o instanceof Map)) throw new IllegalArgumentException("sidecar lacks \"" + key + "\"");
        return (Map<String, Object>) o;
    }

    private static List<?> list(Map<String, Object> m, String key) {
        Object o = m.get(key);
        if (!(o instanceof List)) throw new IllegalArgumentException("sidecar lacks list \"" + key + "\"");
        return (List<?>) o;
    }

    private static String string(Map<String, Object> m, String key, String fallback) {
        Object o = m.get(key);
        if (o == null) {
            if (fallback == null) throw new IllegalArgumentException("sidecar lacks \"" + key + "\"");
            return fallback;
        }
        return (String) o;
    }

    private static int[] shape(Map<String, Object> m, String what) {
        List<?> l = list(m, "shape");
        if (l.size() != 4) throw new IllegalArgumentException(what + " shape is not 4-D: " + l);
        int[] s = new int[4];
        for (int i = 0; i < 4; i++) s[i] = ((Number) l.get(i)).intValue();
        return s;
    }

    private static float[] floats(Map<String, Object> m, String key) {
        List<?> l = list(m, key);
        float[] f = new float[l.size()];
        for (int i = 0; i < f.length; i++) f[i] = (float) ((Number) l.get(i)).doubleValue();
        return f;
    }
}
