package com.facesegtool.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import org.junit.Assume;
import org.junit.Test;

/**
 * Real sidecars written by `facesegtool export` (paths in -Dsidecar.files, separated by the path
 * separator; pytest passes every variant of a fresh export): each one parses, describes a
 * consistent model, and the core can build its input and read an output of its shape.
 */
public class ExportSidecarTest {
    @Test
    public void readsExportSidecars() throws Exception {
        String files = System.getProperty("sidecar.files", "");
        Assume.assumeTrue("no -Dsidecar.files given", !files.isEmpty());
        int n = 0;
        for (String path : files.split(File.pathSeparator)) {
            Sidecar sc = Sidecar.parse(new String(Files.readAllBytes(new File(path).toPath()), StandardCharsets.UTF_8));
            assertEquals(path, sc.classes.size(), sc.numClasses);
            assertEquals(path, sc.classes.size(), sc.palette.length);
            assertTrue(path + ": has a face class", sc.classIndex("face") >= 0);
            assertTrue(path + ": input size", sc.inputWidth > 0 && sc.inputHeight > 0);
            assertEquals(path + ": float input has no quantization", sc.inputIsFloat(), sc.inputQuant == null);
            // Build an input from a grey image and take the argmax of an all-zero output.
            int[] grey = new int[sc.inputWidth * sc.inputHeight];
            java.util.Arrays.fill(grey, 0xFF808080);
            ByteBuffer in = ModelIO.allocateInput(sc);
            ModelIO.fillInput(grey, sc, in);
            byte[] mask = ModelIO.argmax(ModelIO.allocateOutput(sc), sc);
            assertEquals(sc.outputWidth * sc.outputHeight, mask.length);
            n++;
        }
        System.out.println("read " + n + " export sidecar(s)");
    }
}
