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
 * 1/8): the app upsamples the scores to the picture.
 *
 * <p>The twin of facesegtool/contract.py (read_contract): it accepts and refuses the same sidecars
 * (tests/test_android_core.py runs both on the real export and tampered copies of it). One
 * difference, on purpose: the contract lets an old sidecar omit output.shape and output.dtype
 * (Python reads them from the interpreter); the app sizes its buffers from them, so it refuses.
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
        check(root);
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
    }

    static final List<String> REQUIRED = java.util.Arrays.asList("model", "variant", "tflite", "classes", "input", "output");
    static final List<String> TENSOR_DTYPES = java.util.Arrays.asList("float32", "float16", "int8", "uint8", "int16");

    private static IllegalArgumentException bad(String field, String what) {
        return new IllegalArgumentException("sidecar field " + field + " " + what);
    }

    private static boolean isInt(Object v) {
        return v instanceof Integer || v instanceof Long;
    }

    private static boolean isNumber(Object v) {
        return (v instanceof Integer || v instanceof Long || v instanceof Double || v instanceof Float)
                && Double.isFinite(((Number) v).doubleValue());
    }

    /** Absent or JSON null, as Python's dict.get(key) is None. */
    private static boolean none(JSONObject m, String key) {
        return !m.has(key) || m.isNull(key);
    }

    /** What facesegtool.contract._check refuses, field by field, in its order (a sidecar is refused alike). */
    private static void check(JSONObject root) throws JSONException {
        for (String key : REQUIRED) if (!root.has(key)) throw new IllegalArgumentException("sidecar lacks \"" + key + "\"");
        for (String key : new String[] {"model", "tflite", "variant"}) {
            if (!(root.get(key) instanceof String)) throw bad(key, "must be a string");
        }
        if (root.getString("variant").isEmpty()) throw bad("variant", "must name the variant (fp32, fp16, dynamic, int8)");
        Object names = root.get("classes");
        List<String> labels = new ArrayList<>();
        if (names instanceof JSONArray) {
            for (int i = 0; i < ((JSONArray) names).length(); i++) {
                Object n = ((JSONArray) names).get(i);
                if (!(n instanceof String) || ((String) n).isEmpty()) throw bad("classes", "must be a list of class names");
                labels.add((String) n);
            }
        } else {
            throw bad("classes", "must be a list of class names");
        }
        if (labels.size() < 2) throw bad("classes", "lists " + labels.size() + " class(es); a face parser has 2 or more");
        if (new java.util.HashSet<>(labels).size() != labels.size()) throw bad("classes", "has duplicate labels");
        for (String side : new String[] {"input", "output"}) {
            if (!(root.get(side) instanceof JSONObject)) throw bad(side, "must be a mapping");
        }
        JSONObject in = root.getJSONObject("input"), out = root.getJSONObject("output");
        String order = in.has("channel_order") ? String.valueOf(in.get("channel_order")).toUpperCase() : "RGB";
        if (!order.equals("RGB") && !order.equals("BGR")) throw bad("input.channel_order", "must be RGB or BGR");
        for (String key : new String[] {"mean", "std"}) {
            Object v = in.opt(key);
            boolean ok = v instanceof JSONArray && ((JSONArray) v).length() == 3;
            for (int i = 0; ok && i < 3; i++) ok = isNumber(((JSONArray) v).get(i));
            if (!ok) throw bad("input." + key, "must be three finite numbers, one per channel");
        }
        for (int i = 0; i < 3; i++) if (!(in.getJSONArray("std").getDouble(i) > 0)) throw bad("input.std", "must be > 0");
        if (in.has("scale") && !(isNumber(in.get("scale")) && in.getDouble("scale") > 0)) {
            throw bad("input.scale", "must be a number > 0 (255 for 8-bit pixels)");
        }
        if (!none(root, "mapping")) {
            if (!(root.get("mapping") instanceof JSONObject)) throw bad("mapping", "must map each label to a class or \"ignore\"");
        }
        for (String side : new String[] {"input", "output"}) {
            JSONObject t = side.equals("input") ? in : out;
            if (!none(t, "shape") || side.equals("input")) {
                Object shape = t.opt("shape");
                boolean ok = shape instanceof JSONArray && ((JSONArray) shape).length() == 4;
                for (int i = 0; ok && i < 4; i++) {
                    Object v = ((JSONArray) shape).get(i);
                    ok = isInt(v) && ((Number) v).longValue() > 0;
                }
                if (!ok) throw bad(side + ".shape", "must be four positive sizes, not " + shape);
            }
            Object dtype = t.opt("dtype");
            if ((side.equals("input") || !none(t, "dtype")) && !TENSOR_DTYPES.contains(dtype)) {
                throw bad(side + ".dtype", "must be one of " + String.join(", ", TENSOR_DTYPES));
            }
            Object layout = t.has("layout") ? t.get("layout") : "NHWC";
            if (!"NHWC".equals(layout) && !"NCHW".equals(layout)) throw bad(side + ".layout", "must be NHWC or NCHW");
            Object index = t.has("index") ? t.get("index") : Integer.valueOf(0);
            if (!isInt(index) || ((Number) index).longValue() != 0) throw bad(side + ".index", "must be 0");
            if (!none(t, "quantization")) {
                Object q = t.get("quantization");
                boolean ok = q instanceof JSONObject && isNumber(((JSONObject) q).opt("scale"))
                        && ((JSONObject) q).getDouble("scale") > 0 && isInt(((JSONObject) q).opt("zero_point"));
                if (!ok) throw bad(side + ".quantization", "must be null or {\"scale\": number > 0, \"zero_point\": integer}");
            }
        }
        JSONArray ish = in.getJSONArray("shape");
        if (ish.getInt("NCHW".equals(in.opt("layout")) ? 1 : 3) != 3) throw bad("input.shape", "must be one 3-channel image");
        if (in.has("normalization_baked") && !(in.get("normalization_baked") instanceof Boolean)) {
            throw bad("input.normalization_baked", "must be true or false");
        }
        Object kind = out.has("kind") ? out.get("kind") : "logits";
        if (!"logits".equals(kind) && !"probabilities".equals(kind)) throw bad("output.kind", "must be logits or probabilities");
        if (out.has("resized_to_input") && !(out.get("resized_to_input") instanceof Boolean)) {
            throw bad("output.resized_to_input", "must be true or false");
        }
        if (!none(out, "shape")) {
            int channels = out.getJSONArray("shape").getInt("NCHW".equals(out.opt("layout")) ? 1 : 3);
            if (channels != labels.size()) {
                throw bad("classes", "lists " + labels.size() + " classes but output.shape has " + channels + " channels");
            }
        }
        if (!none(root, "palette")) {
            Object p = root.get("palette");
            boolean ok = p instanceof JSONArray && ((JSONArray) p).length() == labels.size();
            for (int i = 0; ok && i < labels.size(); i++) {
                Object c = ((JSONArray) p).get(i);
                ok = c instanceof JSONArray && ((JSONArray) c).length() == 3;
                for (int k = 0; ok && k < 3; k++) {
                    Object v = ((JSONArray) c).get(k);
                    ok = isInt(v) && ((Number) v).longValue() >= 0 && ((Number) v).longValue() <= 255;
                }
            }
            if (!ok) throw bad("palette", "must be one [r, g, b] of 0..255 integers per class (" + labels.size() + ")");
        }
        for (String key : new String[] {"source", "export", "graph"}) {
            if (!none(root, key) && !(root.get(key) instanceof JSONObject)) throw bad(key, "must be a mapping");
        }
        JSONObject source = none(root, "source") ? new JSONObject() : root.getJSONObject("source");
        for (String key : new String[] {"path", "sha256", "ref", "format", "reference"}) {
            if (!none(source, key) && !(source.get(key) instanceof String)) throw bad("source." + key, "must be a string");
        }
        for (String key : new String[] {"sha256", "source_checkpoint", "reference"}) {
            if (!none(root, key) && !(root.get(key) instanceof String)) throw bad(key, "must be a string");
        }
        // What the app needs beyond the contract (see the class comment).
        if (none(out, "shape")) throw new IllegalArgumentException("sidecar lacks \"shape\" in output: the app needs it");
        if (none(out, "dtype")) throw new IllegalArgumentException("sidecar lacks \"dtype\" in output: the app needs it");
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
        // As facesegtool.contract: given a mapping, every label must be in it (other keys are ignored).
        for (int i = 0; given && i < to.length; i++) {
            Object value = mapping.opt(model.get(i));
            if (!(value instanceof String) || (!value.equals(IGNORE) && !target.contains(value))) {
                throw new IllegalArgumentException("mapping: label \"" + model.get(i) + "\" -> " + value
                        + ": not a target class nor \"" + IGNORE + "\"");
            }
        }
        for (int i = 0; i < to.length; i++) {
            String name = model.get(i);
            String dest = given ? mapping.getString(name) : name;
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
