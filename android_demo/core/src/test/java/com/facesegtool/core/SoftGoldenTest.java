package com.facesegtool.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * Soft alphas (Effects.softAlphas, Effects.layers) and the effects blended with them against the
 * Python side's goldens (facesegtool.predict.effects.soft_alphas): the same alphas and pixels, exactly.
 */
public class SoftGoldenTest {
    static GoldenFiles g;
    static Map<?, ?> soft;
    static List<?> classes;

    @BeforeClass
    public static void load() throws Exception {
        GoldenTest.load();
        SteadyGoldenTest.load();
        g = GoldenTest.g;
        soft = (Map<?, ?>) GoldenTest.cases.get("soft");
        classes = (List<?>) soft.get("classes");
    }

    static int at(List<?> list, int i) {
        return ((Number) list.get(i)).intValue();
    }

    /** The golden's pixels x classes uint16 alphas, as Java's alphas[class] layout. */
    static void assertSameAlphas(String what, String file, short[][] ours, Sidecar sc, int pixels) throws Exception {
        ByteBuffer b = g.tensor(file, ByteOrder.LITTLE_ENDIAN);
        int k = classes.size();
        assertEquals(what + ": size", pixels * k * 2, b.capacity());
        for (int e = 0; e < k; e++) {
            short[] mine = ours[sc.classIndex((String) classes.get(e))];
            short[] want = new short[pixels];
            for (int i = 0; i < pixels; i++) want[i] = b.getShort(2 * (i * k + e));
            assertArrayEquals(what + ": " + classes.get(e) + " alpha", want, mine);
        }
    }

    @Test
    public void expTableIsPythons() {
        List<?> want = (List<?>) soft.get("exp_table");
        int[] w = new int[want.size()];
        for (int i = 0; i < w.length; i++) w[i] = at(want, i);
        assertArrayEquals(w, Effects.EXP_TABLE);
    }

    @Test
    public void softAlphasMatchExactly() throws Exception {
        Sidecar sc = GoldenTest.sidecar("float32");
        for (Object o : (List<?>) soft.get("alphas")) {
            Map<?, ?> c = (Map<?, ?>) o;
            List<?> shape = (List<?>) c.get("shape");
            int pixels = at(shape, 0) * at(shape, 1);
            float[] scores = SteadyGoldenTest.floats((String) c.get("scores"));
            boolean probabilities = c.get("kind").equals("probabilities");
            short[][] ours = Effects.softAlphas(scores, pixels, sc, probabilities);
            assertSameAlphas(c.get("scores") + " (" + c.get("kind") + ")", (String) c.get("alphas"), ours, sc, pixels);
        }
    }

    @Test
    public void softAlphasFadeAcrossEdges() throws Exception {
        // Not a tautology: most of the hair's edge pixels get an alpha strictly between 0 and 256.
        Sidecar sc = GoldenTest.sidecar("float32");
        byte[] mask = GoldenTest.maskFromLogits("float32");
        int w = GoldenTest.input.width, hair = sc.classIndex("hair");
        short[] alpha = Effects.softAlphas(SteadyGoldenTest.floats("logits_float32.f32.gz"), mask.length, sc)[hair];
        int edge = 0, soft = 0;
        for (int i = w; i < mask.length - w; i++) {
            boolean in = mask[i] == hair;
            if (in != (mask[i + 1] == hair) || in != (mask[i + w] == hair)) {
                edge++;
                if (alpha[i] > 16 && alpha[i] < 240) soft++;
            }
        }
        assertTrue("soft hair edge pixels " + soft + " of " + edge, edge > 100 && soft > edge / 3);
    }

    @Test
    public void softEffectsMatchExactly() throws Exception {
        Sidecar sc = GoldenTest.sidecar("float32");
        Effects.Params p = GoldenTest.params((Map<?, ?>) ((List<?>) GoldenTest.cases.get("effects")).get(0));
        GoldenFiles.Pnm input = GoldenTest.input;
        int pixels = input.width * input.height;
        for (Object o : (List<?>) soft.get("effects")) {
            Map<?, ?> c = (Map<?, ?>) o;
            double alpha = ((Number) c.get("alpha")).doubleValue();
            short[][] alphas = Effects.softAlphas(SteadyGoldenTest.floats((String) c.get("scores")), pixels, sc);
            byte[] mask = g.pnm((String) c.get("mask")).gray;
            int[] ours = Effects.apply(input.argb, input.width, input.height, mask, alphas, sc.targetClasses, p, alpha);
            GoldenTest.assertSamePixels("soft effects " + c.get("effects"), g.pnm((String) c.get("effects")).argb, ours,
                    input.width);
        }
    }

    @Test
    public void upsampledLayersAndEffectsMatchExactlyInAnyBands() throws Exception {
        Map<?, ?> c = (Map<?, ?>) soft.get("upsampled");
        Sidecar sc = GoldenTest.sidecar("float32");
        List<?> shape = (List<?>) c.get("shape"), out = (List<?>) c.get("out");
        int h = at(shape, 0), w = at(shape, 1), n = at(shape, 2), oh = at(out, 0), ow = at(out, 1);
        float[] all = SteadyGoldenTest.floats((String) c.get("scores"));
        int frame = ((Number) c.get("frame")).intValue();
        float[] scores = java.util.Arrays.copyOfRange(all, frame * h * w * n, (frame + 1) * h * w * n);
        Effects.Params p = GoldenTest.params((Map<?, ?>) ((List<?>) GoldenTest.cases.get("effects")).get(0));
        double alpha = ((Number) c.get("alpha")).doubleValue();
        for (int band : new int[] {Effects.BAND_ROWS, 50}) {
            Effects.Layers layers = Effects.layers(scores, h, w, sc, oh, ow, band);
            assertArrayEquals("upsampled mask, bands of " + band, g.pnm((String) c.get("mask")).gray, layers.mask);
            assertSameAlphas("upsampled alphas, bands of " + band, (String) c.get("alphas"), layers.alphas, sc, oh * ow);
            int[] ours = Effects.apply(GoldenTest.input.argb, ow, oh, layers.mask, layers.alphas, sc.targetClasses, p, alpha);
            GoldenTest.assertSamePixels("upsampled soft effects", g.pnm((String) c.get("effects")).argb, ours, ow);
        }
    }
}
