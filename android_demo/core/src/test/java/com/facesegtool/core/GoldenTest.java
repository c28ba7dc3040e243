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
 * The Java core against the Python side's golden files: same input image and logits -> the same
 * input tensor, mask, overlay and effect pixels, exactly. (The only tolerance: the bilinear
 * resize agrees with OpenCV within one level, OpenCV rounding its weights to fixed point.)
 */
public class GoldenTest {
    static GoldenFiles g;
    static Map<String, Object> cases;
    static GoldenFiles.Pnm input;

    @BeforeClass
    @SuppressWarnings("unchecked")
    public static void load() throws Exception {
        g = new GoldenFiles();
        cases = (Map<String, Object>) GoldenFiles.json(g.text("cases.json"));
        input = g.pnm("input.ppm");
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> variant(String dtype) {
        return (Map<String, Object>) ((Map<String, Object>) cases.get("variants")).get(dtype);
    }

    static Sidecar sidecar(String dtype) throws Exception {
        return Sidecar.parse(g.text((String) variant(dtype).get("sidecar")));
    }

    static byte[] maskFromLogits(String dtype) throws Exception {
        Sidecar sc = sidecar(dtype);
        ByteBuffer logits = g.tensor((String) variant(dtype).get("logits"), ByteOrder.nativeOrder());
        return ModelIO.argmax(logits, sc);
    }

    /** Index of the first differing element, for a readable failure. */
    static String firstDiff(int[] want, int[] got, int width) {
        for (int i = 0; i < want.length; i++) {
            if (want[i] != got[i]) {
                return String.format("first difference at (x=%d, y=%d): python %06X, java %06X", i % width, i / width,
                        want[i] & 0xFFFFFF, got[i] & 0xFFFFFF);
            }
        }
        return "";
    }

    static void assertSamePixels(String name, int[] want, int[] got, int width) {
        assertEquals(name + ": size", want.length, got.length);
        int diff = 0;
        for (int i = 0; i < want.length; i++) if ((want[i] & 0xFFFFFF) != (got[i] & 0xFFFFFF)) diff++;
        assertEquals(name + ": pixels differing from Python (" + firstDiff(want, got, width) + ")", 0, diff);
    }

    @Test
    public void inputTensorsAreBitIdentical() throws Exception {
        for (String dtype : new String[] {"float32", "int8"}) {
            Sidecar sc = sidecar(dtype);
            assertEquals(input.width, sc.inputWidth);
            ByteBuffer ours = ModelIO.allocateInput(sc);
            ModelIO.fillInput(input.argb, sc, ours);
            ByteBuffer want = g.tensor((String) variant(dtype).get("input_tensor"), ByteOrder.nativeOrder());
            byte[] a = new byte[want.capacity()], b = new byte[ours.capacity()];
            want.get(a);
            ours.get(b);
            assertArrayEquals(dtype + " input tensor", a, b);
        }
    }

    @Test
    public void masksMatchExactly() throws Exception {
        for (String dtype : new String[] {"float32", "int8"}) {
            byte[] want = g.pnm((String) variant(dtype).get("mask")).gray;
            assertArrayEquals(dtype + " argmax mask", want, maskFromLogits(dtype));
        }
    }

    @Test
    public void int8MaskDiffersFromFloatOnlyWhereQuantizationTies() throws Exception {
        // Not a tautology: the int8 goldens quantize coarser than the float grid, so a few pixels
        // differ; this guards that the test data really exercises the int8 path.
        byte[] f = maskFromLogits("float32"), q = maskFromLogits("int8");
        int diff = 0;
        for (int i = 0; i < f.length; i++) if (f[i] != q[i]) diff++;
        assertTrue("int8 and float masks should differ a little, differ in " + diff, diff > 0 && diff < f.length / 20);
    }

    @Test
    public void colourMaskAndOverlaysMatchExactly() throws Exception {
        Sidecar sc = sidecar("float32");
        byte[] mask = maskFromLogits("float32");
        assertSamePixels("colour mask", g.pnm("colour_mask.ppm").argb, Overlay.colourMask(mask, sc.palette), input.width);
        for (Object o : (List<?>) cases.get("effects")) {
            Map<?, ?> c = (Map<?, ?>) o;
            double alpha = ((Number) c.get("alpha")).doubleValue();
            int[] ours = Overlay.blend(input.argb, mask, sc.palette, sc.classIndex("background"), alpha);
            assertSamePixels("overlay alpha " + alpha, g.pnm((String) c.get("overlay")).argb, ours, input.width);
        }
    }

    static Effects.Params params(Map<?, ?> c) {
        return new Effects.Params(Effects.parseColour((String) c.get("hair")), Effects.parseColour((String) c.get("lips")),
                Effects.parseColour((String) c.get("brows")), ((Number) c.get("smooth")).intValue());
    }

    @Test
    public void effectsMatchExactly() throws Exception {
        Sidecar sc = sidecar("float32");
        byte[] mask = maskFromLogits("float32");
        for (Object o : (List<?>) cases.get("effects")) {
            Map<?, ?> c = (Map<?, ?>) o;
            double alpha = ((Number) c.get("alpha")).doubleValue();
            int[] ours = Effects.apply(input.argb, input.width, input.height, mask, sc.classes, params(c), alpha);
            assertSamePixels("effects alpha " + alpha, g.pnm((String) c.get("effects")).argb, ours, input.width);
        }
    }

    @Test
    public void effectsOnInt8MaskMatchExactly() throws Exception {
        Sidecar sc = sidecar("int8");
        Map<?, ?> c = (Map<?, ?>) ((List<?>) cases.get("effects")).get(0);
        int[] ours = Effects.apply(input.argb, input.width, input.height, maskFromLogits("int8"), sc.classes, params(c), 0.6);
        assertSamePixels("effects on the int8 mask", g.pnm((String) cases.get("effects_int8")).argb, ours, input.width);
    }

    @Test
    public void maskUpscaleMatchesExactly() throws Exception {
        List<?> hw = (List<?>) cases.get("upscale");
        int h = ((Number) hw.get(0)).intValue(), w = ((Number) hw.get(1)).intValue();
        byte[] ours = ImageOps.resizeMaskNearest(maskFromLogits("float32"), input.width, input.height, w, h);
        GoldenFiles.Pnm want = g.pnm("mask_upscaled.pgm");
        assertEquals(w, want.width);
        assertArrayEquals("nearest mask resize", want.gray, ours);
    }

    @Test
    public void bilinearResizeWithinOneLevelOfOpenCV() throws Exception {
        List<?> hw = (List<?>) cases.get("resize");
        int h = ((Number) hw.get(0)).intValue(), w = ((Number) hw.get(1)).intValue();
        int[] ours = ImageOps.resizeBilinear(input.argb, input.width, input.height, w, h);
        int[] want = g.pnm("resize_bilinear.ppm").argb;
        int worst = 0, off = 0;
        for (int i = 0; i < want.length; i++) {
            for (int s = 0; s <= 16; s += 8) {
                int d = Math.abs(((want[i] >> s) & 255) - ((ours[i] >> s) & 255));
                worst = Math.max(worst, d);
                if (d > 0) off++;
            }
        }
        assertTrue("bilinear resize differs from cv2 by " + worst + " levels (" + off + " channel values)", worst <= 1);
    }
}
