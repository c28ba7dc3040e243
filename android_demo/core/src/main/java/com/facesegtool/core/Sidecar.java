package com.facesegtool.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The sidecar JSON that {@code facesegtool export} writes next to each .tflite: everything the
 * app needs to feed the model and read its output, so a new model drops in without code changes.
 * Parsed with {@code org.json}, which every Android device has (android.jar); the JVM tests use
 * Debian's libandroid-json-org-java, the same libcore code.
 *
 * <pre>
 * {"format":"facesegtool-sidecar","version":1,"classes":[...],"palette":[[r,g,b],...],
 *  "target_classes":[...11 names...],                      (optional: absent = "classes")
 *  "mapping":{"model label":"target class"|"ignore",...},  (optional: absent = identity by name)
 *  "input":{"shape":[1,H,W,3],"layout":"NHWC","channel_order":"RGB","dtype":"float32|int8|uint8",
 *           "mean":[..],"std":[..],"scale":255.0,"normalization_baked":false,
 *           "quantization":{"scale":s,"zero_point":z}|null},
 *  "output":{"shape":[1,h,w,C],"layout":"NHWC","dtype":"...","quantization":...|null,
 *            "kind":"logits"|"probabilities"}, ...}
 * </pre>
 *
 * <p>{@link #classes} are the model's own labels in output-channel order (e.g. the 19 CelebAMask-HQ
 * parts); {@link #targetClasses} are the app's classes (background, lips, eyes, nose, hair, eyebrows,
 * teeth, face, ears, glasses, beard), which the effects find by name. {@link #targetOf} maps one to
 * the other; "ignore" (and a label with no mapping whose name is not a target) maps to background,
 * so an ignored part is simply not shown. The output may be smaller than the input (h, w of 1/4 or
 * 1/8): the app upsamples the scores or the mask to the frame.
 */
public final class Sidecar {
    public static final String FORMAT = "facesegtool-sidecar";
    public static final String IGNORE = "ignore";

    /** Affine quantization of one tensor: real = (q - zeroPoint) * scale. */
    public static final class Quant {
        public final double scale;
        public final int zeroPoint;

        public Quant(double scale, int zeroPoint) {
            this.scale = scale;
            this.zeroPoint = zeroPoint;
        }
    }

    /** The model's labels, in output-channel order. */
    public final List<String> classes;
    /** The app's classes that the mask is shown in (equal to {@link #classes} for our own exports). */
    public final List<String> targetClasses;
    /** targetOf[modelClass] = index in {@link #targetClasses}. */
    private final int[] targetOf;
    private final boolean identity;
    /** RGB per target class, 0xRRGGBB. */
    public final int[] palette;
    public final int inputHeight, inputWidth;
    public final String inputLayout, channelOrder, inputDtype;
    public final float[] mean, std;
    public final double scale;
    public final boolean normalizationBaked;
    public final Quant inputQuant; // null: float input (or raw integers)
    public final int outputHeight, outputWidth, numClasses;
    public final String outputLayout, outputDtype;
    /** "logits" or "probabilities": the argmax is the same; scores differ in range. */
    public final String outputKind;
    public final Quant outputQuant;
    public final String variant, model;

    private Sidecar(JSONObject root) throws JSONException {
        if (!FORMAT.equals(root.optString("format"))) {
            throw new IllegalArgumentException("not a facesegtool sidecar (no \"format\": \"" + FORMAT + "\")");
        }
        classes = strings(root, "classes");
        targetClasses = root.has("target_classes") ? strings(root, "target_classes") : classes;
        targetOf = readMapping(root.optJSONObject("mapping"), classes, targetClasses, root.has("mapping")
                && !root.isNull("mapping"));
        boolean same = targetClasses.size() == classes.size();
        for (int i = 0; same && i < targetOf.length; i++) same = targetOf[i] == i;
        identity = same;
        palette = readPalette(root.optJSONArray("palette"), targetClasses.size());
        variant = root.optString("variant", "");
        model = root.optString("model", "");

        JSONObject in = object(root, "input");
        inputLayout = in.optString("layout", "NHWC");
        int[] ish = shape(in, "input");
        boolean inNhwc = inputLayout.equals("NHWC");
        inputHeight = inNhwc ? ish[1] : ish[2];
        inputWidth = inNhwc ? ish[2] : ish[3];
        if ((inNhwc ? ish[3] : ish[1]) != 3) throw new IllegalArgumentException("input is not a 3-channel image");
        channelOrder = in.optString("channel_order", "RGB").toUpperCase();
        inputDtype = required(in, "dtype");
        mean = floats(in, "mean");
        std = floats(in, "std");
        scale = in.isNull("scale") ? 255.0 : in.getDouble("scale");
        normalizationBaked = in.optBoolean("normalization_baked", false);
        inputQuant = quant(in, "input");

        JSONObject out = object(root, "output");
        outputLayout = out.optString("layout", "NHWC");
        int[] osh = shape(out, "output");
        boolean outNhwc = outputLayout.equals("NHWC");
        outputHeight = outNhwc ? osh[1] : osh[2];
        outputWidth = outNhwc ? osh[2] : osh[3];
        numClasses = outNhwc ? osh[3] : osh[1];
        outputDtype = required(out, "dtype");
        outputKind = out.optString("kind", "logits");
        if (!outputKind.equals("logits") && !outputKind.equals("probabilities")) {
            throw new IllegalArgumentException("output kind " + outputKind + ": expected logits or probabilities");
        }
        outputQuant = quant(out, "output");
        if (numClasses != classes.size()) {
            throw new IllegalArgumentException("output has " + numClasses + " channels but " + classes.size() + " classes");
        }
        if (outputHeight < 1 || outputWidth < 1 || outputHeight > inputHeight || outputWidth > inputWidth) {
            throw new IllegalArgumentException("output " + outputWidth + "x" + outputHeight + " is not within the input "
                    + inputWidth + "x" + inputHeight);
        }
    }

    /** Parses sidecar JSON text; IllegalArgumentException says what is wrong. */
    public static Sidecar parse(String json) {
        Object root;
        try {
            root = new org.json.JSONTokener(json).nextValue();
        } catch (JSONException e) {
            throw new IllegalArgumentException("sidecar is not valid JSON: " + e.getMessage(), e);
        }
        if (!(root instanceof JSONObject)) throw new IllegalArgumentException("sidecar is not a JSON object");
        try {
            return new Sidecar((JSONObject) root);
        } catch (JSONException | ClassCastException e) {
            throw new IllegalArgumentException("sidecar field of the wrong type or missing: " + e.getMessage(), e);
        }
    }

    /** Index of a target class by name, or -1 (effects find "hair", "lips", ... this way). */
    public int classIndex(String name) {
        return targetClasses.indexOf(name);
    }

    /** The target class that model class {@code modelClass} is shown as. */
    public int targetOf(int modelClass) {
        return targetOf[modelClass];
    }

    /** True when the model's classes are the target classes, in order (our own exports). */
    public boolean isIdentityMapping() {
        return identity;
    }

    /** Rewrites a mask of model class indices as target class indices, in place; returns it. */
    public byte[] toTargetMask(byte[] mask) {
        if (identity) return mask;
        for (int i = 0; i < mask.length; i++) mask[i] = (byte) targetOf[mask[i] & 255];
        return mask;
    }

    public boolean inputIsFloat() {
        return inputDtype.startsWith("float");
    }

    private static int[] readMapping(JSONObject mapping, List<String> model, List<String> target, boolean given)
            throws JSONException {
        int background = Math.max(0, target.indexOf("background"));
        int[] to = new int[model.size()];
        if (given) {
            JSONArray keys = mapping.names(); // names(), not keys(): same signature in every org.json
            for (int k = 0; keys != null && k < keys.length(); k++) {
                String key = keys.getString(k);
                if (!model.contains(key)) {
                    throw new IllegalArgumentException("mapping names \"" + key + "\", which is not one of the model's classes");
                }
                String value = mapping.getString(key);
                if (!value.equals(IGNORE) && !target.contains(value)) {
                    throw new IllegalArgumentException("mapping \"" + key + "\" -> \"" + value
                            + "\": not a target class nor \"ignore\"");
                }
            }
        }
        for (int i = 0; i < to.length; i++) {
            String name = model.get(i);
            String dest = given && mapping.has(name) ? mapping.getString(name) : name;
            int t = dest.equals(IGNORE) ? -1 : target.indexOf(dest);
            to[i] = t < 0 ? background : t; // ignored or unknown: shown as background
        }
        return to;
    }

    private static int[] readPalette(JSONArray rows, int n) throws JSONException {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            if (rows == null || i >= rows.length()) {
                p[i] = 0x808080; // no colour given: grey
                continue;
            }
            JSONArray rgb = rows.getJSONArray(i);
            p[i] = (rgb.getInt(0) << 16) | (rgb.getInt(1) << 8) | rgb.getInt(2);
        }
        return p;
    }

    private static Quant quant(JSONObject tensor, String what) throws JSONException {
        if (tensor.isNull("quantization")) return null;
        JSONObject q = tensor.getJSONObject("quantization");
        if (q.opt("scale") instanceof JSONArray) {
            throw new IllegalArgumentException(what + ": per-axis quantization is not supported for model input/output");
        }
        double sc = q.getDouble("scale");
        if (!(sc > 0)) throw new IllegalArgumentException(what + ": quantization scale must be > 0");
        return new Quant(sc, q.getInt("zero_point"));
    }

    private static JSONObject object(JSONObject m, String key) {
        JSONObject o = m.optJSONObject(key);
        if (o == null) throw new IllegalArgumentException("sidecar lacks \"" + key + "\"");
        return o;
    }

    private static JSONArray array(JSONObject m, String key) {
        JSONArray a = m.optJSONArray(key);
        if (a == null) throw new IllegalArgumentException("sidecar lacks list \"" + key + "\"");
        return a;
    }

    private static String required(JSONObject m, String key) throws JSONException {
        if (m.isNull(key)) throw new IllegalArgumentException("sidecar lacks \"" + key + "\"");
        return m.getString(key);
    }

    private static List<String> strings(JSONObject m, String key) throws JSONException {
        JSONArray a = array(m, key);
        List<String> names = new ArrayList<>();
        for (int i = 0; i < a.length(); i++) names.add(a.getString(i));
        return Collections.unmodifiableList(names);
    }

    private static int[] shape(JSONObject m, String what) throws JSONException {
        JSONArray l = array(m, "shape");
        if (l.length() != 4) throw new IllegalArgumentException(what + " shape is not 4-D: " + l);
        int[] s = new int[4];
        for (int i = 0; i < 4; i++) s[i] = l.getInt(i);
        return s;
    }

    private static float[] floats(JSONObject m, String key) throws JSONException {
        JSONArray l = array(m, key);
        float[] f = new float[l.length()];
        for (int i = 0; i < f.length; i++) f[i] = (float) l.getDouble(i);
        return f;
    }
}
