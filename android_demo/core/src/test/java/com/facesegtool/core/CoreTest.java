package com.facesegtool.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/** Behaviour of the core pieces on their own: JSON, sidecar checks, argmax rules, effect regions. */
public class CoreTest {
    @Test
    public void sidecarReadsExactDoublesAndRejectsMalformedJson() {
        // Python's repr of a float32 scale reads back as the same double through org.json.
        Sidecar sc = Sidecar.parse(sidecarJson("{\"scale\":0.007843137718737125,\"zero_point\":-1}", "int8"));
        assertEquals(0.007843137718737125, sc.inputQuant.scale, 0.0);
        for (String bad : new String[] {"{\"a\": 1,", "[1 2]", "\"open", "tru", ""}) {
            assertThrows(bad, IllegalArgumentException.class, () -> Sidecar.parse(bad));
        }
    }

    static String sidecarJson(String inputQuant, String outputDtype) {
        return sidecarJson(inputQuant, outputDtype, "[1,2,2,3]");
    }

    static String sidecarJson(String inputQuant, String outputDtype, String outputShape) {
        return "{\"format\":\"facesegtool-sidecar\",\"version\":1,\"model\":\"test\",\"variant\":\"fp32\","
                + "\"tflite\":\"test.tflite\",\"classes\":[\"background\",\"face\",\"hair\"],"
                + "\"palette\":[[0,0,0],[255,150,110],[250,200,0]],"
                + "\"input\":{\"index\":0,\"shape\":[1,2,2,3],\"layout\":\"NHWC\",\"channel_order\":\"RGB\","
                + "\"dtype\":\"" + (inputQuant.equals("null") ? "float32" : "int8") + "\",\"mean\":[0.5,0.5,0.5],"
                + "\"std\":[0.5,0.5,0.5],\"scale\":255.0,\"normalization_baked\":false,\"quantization\":" + inputQuant + "},"
                + "\"output\":{\"index\":0,\"shape\":" + outputShape + ",\"layout\":\"NHWC\",\"dtype\":\"" + outputDtype + "\","
                + "\"quantization\":null}}";
    }

    @Test
    public void sidecarGivesSizesClassesAndPalette() {
        Sidecar sc = Sidecar.parse(sidecarJson("{\"scale\":0.0078125,\"zero_point\":-1}", "int8"));
        assertEquals(2, sc.inputWidth);
        assertEquals(3, sc.numClasses);
        assertEquals(2, sc.classIndex("hair"));
        assertEquals(-1, sc.classIndex("lips"));
        assertEquals(0xFA_C8_00, sc.palette[2]);
        assertEquals(-1, sc.inputQuant.zeroPoint);
        assertTrue(!sc.inputIsFloat());
    }

    @Test
    public void sidecarRejectsOtherFilesAndPerAxisQuantization() {
        assertThrows(IllegalArgumentException.class, () -> Sidecar.parse("{\"format\":\"something-else\"}"));
        assertThrows(IllegalArgumentException.class, () -> Sidecar.parse("[1,2]"));
        assertThrows(IllegalArgumentException.class,
                () -> Sidecar.parse(sidecarJson("{\"scale\":[0.1,0.2],\"zero_point\":[0,0]}", "int8")));
        // 5 output channels for 3 classes: the sidecar does not describe this model.
        assertThrows(IllegalArgumentException.class, () -> Sidecar.parse(sidecarJson("null", "float32", "[1,2,2,5]")));
    }

    @Test
    public void argmaxTakesTheFirstMaximumAndReadsInt8AsSigned() {
        Sidecar sc = Sidecar.parse(sidecarJson("null", "int8"));
        // 4 pixels x 3 classes: a tie (first wins), negatives, -128 vs 127, and a plain maximum.
        byte[] q = {5, 5, 1, -3, -1, -2, -128, 127, 0, 0, 0, 9};
        assertArrayEquals(new byte[] {0, 1, 1, 2}, ModelIO.argmax(ByteBuffer.wrap(q), sc));
        Sidecar fs = Sidecar.parse(sidecarJson("null", "float32"));
        ByteBuffer f = ByteBuffer.allocate(48).order(ByteOrder.nativeOrder());
        float[] v = {0.5f, 0.5f, 0.1f, -3f, -1f, -2f, Float.NaN, 1f, 2f, 0f, 0f, 9f};
        for (int i = 0; i < v.length; i++) f.putFloat(4 * i, v[i]);
        assertArrayEquals(new byte[] {0, 1, 0, 2}, ModelIO.argmax(f, fs));
    }

    @Test
    public void int8InputQuantizationRoundsHalfToEvenAndClamps() {
        Sidecar sc = Sidecar.parse(sidecarJson("{\"scale\":0.0078125,\"zero_point\":-1}", "int8"));
        // v=0 -> x=-1 -> -128 - 1 = -129 -> clamped -128; v=255 -> 1 -> 127; v=128 -> ~0.0039 -> 0.5 - 1 -> -0 (half to even)
        int[] argb = {0xFF000000, 0xFFFFFFFF, 0xFF808080, 0xFF000000};
        ByteBuffer in = ModelIO.allocateInput(sc);
        ModelIO.fillInput(argb, sc, in);
        assertEquals(-128, in.get(0));
        assertEquals(127, in.get(3));
        float x = ModelIO.normalise(128, 0, sc);
        assertEquals((int) Math.rint(x / 0.0078125f - 1f), in.get(6));
        assertEquals(0.25f, ModelIO.dequantize(1, new Sidecar.Quant(0.125, -1)), 0f);
    }

    @Test
    public void strengthRoundsLikePython() {
        assertEquals(0, Effects.strength(0.0));
        assertEquals(128, Effects.strength(0.5));
        assertEquals(154, Effects.strength(0.6)); // 153.6 -> 154
        assertEquals(256, Effects.strength(1.0));
        assertThrows(IllegalArgumentException.class, () -> Effects.strength(1.5));
    }

    @Test
    public void effectsTouchOnlyTheirClassesAndZeroStrengthChangesNothing() {
        List<String> classes = java.util.Arrays.asList("background", "lips", "eyes", "nose", "hair", "eyebrows", "teeth", "face");
        int w = 8, h = 8;
        int[] img = new int[w * h];
        byte[] mask = new byte[w * h];
        for (int i = 0; i < img.length; i++) {
            img[i] = 0xFF000000 | ((i * 37) & 255) << 16 | ((i * 11) & 255) << 8 | ((i * 5) & 255);
            mask[i] = (byte) (i % 8); // every class, background and teeth included
        }
        Effects.Params p = Effects.Params.defaults();
        assertArrayEquals(img, Effects.apply(img, w, h, mask, classes, p, 0.0));
        int[] out = Effects.apply(img, w, h, mask, classes, p, 1.0);
        for (int i = 0; i < img.length; i++) {
            String cls = classes.get(mask[i]);
            boolean touched = cls.equals("hair") || cls.equals("lips") || cls.equals("eyebrows") || cls.equals("face");
            if (!touched) assertEquals("class " + cls + " must not change", img[i], out[i]);
        }
        int hair = 4;
        assertNotEquals(img[hair], out[hair]);
    }

    @Test
    public void smoothingAveragesOnlyTheRegion() {
        int w = 5, h = 1;
        int[] img = {0xFF0A0A0A, 0xFF141414, 0xFFFFFFFF, 0xFF1E1E1E, 0xFF282828};
        byte[] mask = {1, 1, 0, 1, 1}; // the white pixel is not face: it must not leak in
        int[] out = Effects.smoothRegion(img, w, h, mask, 1, 1);
        assertEquals(0xFF0F0F0F, out[0]); // (10 + 20 + 1) / 2 = 15
        assertEquals(0xFF0F0F0F, out[1]);
        assertEquals(0xFFFFFFFF, out[2]);
        assertEquals(0xFF232323, out[3]); // (30 + 40 + 1) / 2 = 35
    }

    @Test
    public void centreSquareAndNearestResize() {
        int[] img = new int[6 * 4];
        for (int i = 0; i < img.length; i++) img[i] = i;
        int[] sq = ImageOps.centreSquare(img, 6, 4);
        assertEquals(16, sq.length);
        assertEquals(1, sq[0]); // x0 = (6 - 4) / 2
        byte[] m = {0, 1, 2, 3};
        assertArrayEquals(new byte[] {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3}, ImageOps.resizeMaskNearest(m, 2, 2, 4, 4));
    }
}
