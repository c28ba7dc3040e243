package com.facesegtool.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * Sidecar.parse against facesegtool.contract (the Python reader) on the real int8 export's sidecar
 * and copies of it tampered one field at a time (sidecar_parity.json, tools/android_goldens.py):
 * the same sidecars accepted and refused, and the same values read from the accepted ones. The one
 * difference allowed is "app_needs" (no output.shape / output.dtype): the contract accepts it, the
 * app refuses, saying it needs the field.
 */
public class SidecarParityTest {
    static Object quant(Sidecar.Quant q) {
        return q == null ? null : Arrays.asList(q.scale, (long) q.zeroPoint);
    }

    static List<Object> floats(float[] values) {
        List<Object> out = new ArrayList<>();
        for (float v : values) out.add((double) v);
        return out;
    }

    /** Python's numbers as Java reads them: floats as float32 (the Sidecar keeps mean and std so), ints as long. */
    static Object plain(Object v, boolean asFloat32) {
        if (v instanceof List) {
            List<Object> out = new ArrayList<>();
            for (Object o : (List<?>) v) out.add(plain(o, asFloat32));
            return out;
        }
        if (v instanceof Number) {
            Number n = (Number) v;
            if (v instanceof Integer || v instanceof Long) return asFloat32 ? (double) n.floatValue() : (Object) n.longValue();
            return asFloat32 ? (double) n.floatValue() : (Object) n.doubleValue();
        }
        return v;
    }

    static void same(String name, String field, Object python, Object java, boolean asFloat32) {
        assertEquals(name + ": " + field, plain(python, asFloat32), plain(java, asFloat32));
    }

    @Test
    public void acceptsAndRefusesWhatThePythonReaderDoes() throws Exception {
        GoldenFiles g = new GoldenFiles();
        Map<?, ?> index = (Map<?, ?>) GoldenFiles.json(g.text("sidecar_parity.json"));
        List<?> cases = (List<?>) index.get("cases");
        int accepted = 0, refused = 0;
        for (Object o : cases) {
            Map<?, ?> c = (Map<?, ?>) o;
            String name = (String) c.get("name"), text = (String) c.get("text");
            boolean python = (Boolean) c.get("accepted");
            boolean appNeeds = Boolean.TRUE.equals(c.get("app_needs"));
            Sidecar sc = null;
            String error = null;
            try {
                sc = Sidecar.parse(text);
            } catch (IllegalArgumentException e) {
                error = e.getMessage();
            }
            if (!python || appNeeds) {
                if (sc != null) fail(name + ": Python refuses it (" + c.get("error") + "), Java accepts it");
                if (appNeeds) assertTrue(name + ": " + error, error.contains("the app needs"));
                refused++;
                continue;
            }
            assertNotNull(name + ": Python accepts it, Java refuses it: " + error, sc);
            Map<?, ?> v = (Map<?, ?>) c.get("values");
            same(name, "input_hw", v.get("input_hw"), Arrays.asList(sc.inputHeight, sc.inputWidth), false);
            same(name, "input_dtype", v.get("input_dtype"), sc.inputDtype, false);
            same(name, "input_layout", v.get("input_layout"), sc.inputLayout, false);
            same(name, "channel_order", v.get("channel_order"), sc.channelOrder, false);
            same(name, "mean", v.get("mean"), floats(sc.mean), true);
            same(name, "std", v.get("std"), floats(sc.std), true);
            same(name, "scale", v.get("scale"), sc.scale, false);
            same(name, "baked", v.get("baked"), sc.normalizationBaked, false);
            same(name, "input_quant", v.get("input_quant"), quant(sc.inputQuant), false);
            same(name, "output_hw", v.get("output_hw"), Arrays.asList(sc.outputHeight, sc.outputWidth), false);
            same(name, "num_classes", v.get("num_classes"), sc.numClasses, false);
            same(name, "output_dtype", v.get("output_dtype"), sc.outputDtype, false);
            same(name, "output_layout", v.get("output_layout"), sc.outputLayout, false);
            same(name, "output_quant", v.get("output_quant"), quant(sc.outputQuant), false);
            same(name, "kind", v.get("kind"), sc.outputKind, false);
            same(name, "classes", v.get("classes"), sc.classes, false);
            same(name, "model", v.get("model"), sc.model, false);
            same(name, "variant", v.get("variant"), sc.variant, false);
            accepted++;
        }
        assertTrue("parity cases: " + accepted + " accepted, " + refused + " refused", accepted >= 5 && refused >= 20);
        System.out.println("sidecar parity: " + accepted + " accepted, " + refused + " refused, as Python");
    }
}
