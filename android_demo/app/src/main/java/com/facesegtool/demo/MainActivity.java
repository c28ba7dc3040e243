package com.facesegtool.demo;

import android.Manifest;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.Matrix;
import android.net.Uri;
import android.os.Bundle;
import android.os.SystemClock;
import android.util.Log;
import android.view.View;
import android.widget.CheckBox;
import android.widget.ImageView;
import android.widget.RadioGroup;
import android.widget.SeekBar;
import android.widget.TextView;

import androidx.activity.ComponentActivity;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.contract.ActivityResultContracts;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.core.Preview;
import androidx.camera.core.resolutionselector.AspectRatioStrategy;
import androidx.camera.core.resolutionselector.ResolutionSelector;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;
import androidx.exifinterface.media.ExifInterface;

import com.facesegtool.core.FramePipeline;
import com.facesegtool.core.ScoreSmoother;
import com.facesegtool.core.Sidecar;

import java.io.IOException;
import java.io.InputStream;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Live face parsing: CameraX frames -> centre square -> model input -> LiteRT -> class mask ->
 * translucent mask layer or beauty effects over the preview; or the same for a gallery photo.
 * All image work happens in the plain-Java core (android_demo/core: FramePipeline), tested against
 * the Python side's golden files; this class only wires Android to it: the UI's choices are read
 * into one immutable FramePipeline.Settings per frame, so the worker never reads a view or a half-
 * changed choice. Inference runs on one background
 * thread, never on the UI thread; every ImageProxy is closed; an exception on a frame or a photo is
 * shown on screen and the camera keeps running (it never reaches the thread's uncaught handler,
 * which would kill the app).
 */
public class MainActivity extends ComponentActivity {
    private static final String TAG = "FaceSegDemo";
    /** Effects are drawn at most this many pixels square on the live view (cost grows with area). */
    private static final int LIVE_EFFECT_SIDE = 480;
    private static final int PHOTO_MAX_SIDE = 1280;

    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private Segmenter segmenter; // used on the worker thread only
    private FramePipeline pipeline; // worker thread only; made with the segmenter (it holds the smoothing)
    private volatile double steady = ScoreSmoother.DEFAULT_STRENGTH; // the Steady slider
    // Set by the UI on another scene (camera switched, back from a photo); the next frame takes it.
    private final AtomicBoolean restartSmoothing = new AtomicBoolean(true);

    private PreviewView preview;
    private ImageView overlayView, photoView;
    private TextView stats;
    private CheckBox hair, lips, brows, smooth;

    private volatile boolean effectsMode = false;
    private volatile double alpha = 0.5;
    private volatile boolean frontCamera = true;
    private volatile Segmenter.Accelerator accelerator = Segmenter.Accelerator.GPU;
    private volatile boolean photoMode = false;
    // Effect switches, mirrored from the check boxes so the worker thread never reads views.
    private volatile boolean hairOn = true, lipsOn = true, browsOn = true, smoothOn = true;
    private ProcessCameraProvider cameraProvider;
    private long lastFrameNanos;
    private double fps;
    private Bitmap lastPhoto;
    // Per-frame buffers, reused (worker thread only): the frame's pixels and two output bitmaps
    // used in turn, so the one on screen is never the one being drawn.
    private int[] framePixels;
    private final Bitmap[] shownBitmaps = new Bitmap[2];
    private int shownTurn;
    private int failedFrames;

    private final ActivityResultLauncher<String> cameraPermission =
            registerForActivityResult(new ActivityResultContracts.RequestPermission(), granted -> {
                if (granted) startCamera();
                else stats.setText(R.string.need_camera);
            });

    private final ActivityResultLauncher<String> pickPhoto =
            registerForActivityResult(new ActivityResultContracts.GetContent(), this::onPhotoPicked);

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        preview = findViewById(R.id.preview);
        preview.setScaleType(PreviewView.ScaleType.FILL_CENTER);
        overlayView = findViewById(R.id.overlay);
        photoView = findViewById(R.id.photo);
        stats = findViewById(R.id.stats);
        hair = findViewById(R.id.hair);
        lips = findViewById(R.id.lips);
        brows = findViewById(R.id.brows);
        smooth = findViewById(R.id.smooth);

        if (!Segmenter.modelInstalled(this)) {
            stats.setText(R.string.no_model);
            return;
        }
        findViewById(R.id.switch_camera).setOnClickListener(v -> {
            frontCamera = !frontCamera;
            restartSmoothing.set(true); // another scene
            if (!photoMode) startCamera();
        });
        findViewById(R.id.gallery).setOnClickListener(v -> pickPhoto.launch("image/*"));
        findViewById(R.id.live).setOnClickListener(v -> {
            photoMode = false;
            restartSmoothing.set(true);
            photoView.setVisibility(View.GONE);
            startCamera();
        });
        ((RadioGroup) findViewById(R.id.mode)).setOnCheckedChangeListener((g, id) -> {
            effectsMode = id == R.id.mode_effects;
            refreshPhoto();
        });
        ((RadioGroup) findViewById(R.id.accelerator)).setOnCheckedChangeListener((g, id) -> {
            accelerator = id == R.id.gpu ? Segmenter.Accelerator.GPU : Segmenter.Accelerator.CPU;
            worker.execute(this::reloadModel);
            refreshPhoto();
        });
        ((SeekBar) findViewById(R.id.strength)).setOnSeekBarChangeListener(new SeekBar.OnSeekBarChangeListener() {
            @Override public void onProgressChanged(SeekBar s, int progress, boolean fromUser) { alpha = progress / 100.0; }
            @Override public void onStartTrackingTouch(SeekBar s) {}
            @Override public void onStopTrackingTouch(SeekBar s) { refreshPhoto(); }
        });
        ((SeekBar) findViewById(R.id.steady)).setOnSeekBarChangeListener(new SeekBar.OnSeekBarChangeListener() {
            @Override public void onProgressChanged(SeekBar s, int progress, boolean fromUser) { steady = progress / 100.0; }
            @Override public void onStartTrackingTouch(SeekBar s) {}
            @Override public void onStopTrackingTouch(SeekBar s) {}
        });
        View.OnClickListener redraw = v -> {
            hairOn = hair.isChecked();
            lipsOn = lips.isChecked();
            browsOn = brows.isChecked();
            smoothOn = smooth.isChecked();
            refreshPhoto();
        };
        for (CheckBox c : new CheckBox[] {hair, lips, brows, smooth}) c.setOnClickListener(redraw);

        worker.execute(this::reloadModel);
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA);
        }
    }

    /** Worker thread: (re)creates the interpreter on the chosen accelerator. */
    private void reloadModel() {
        if (segmenter != null) segmenter.close();
        segmenter = null;
        try {
            segmenter = new Segmenter(this, accelerator, 4);
            pipeline = new FramePipeline(segmenter.sidecar);
            Sidecar sc = segmenter.sidecar;
            String text = String.format("%s %s %dx%d on %s", sc.model, sc.variant, sc.inputWidth, sc.inputHeight,
                    segmenter.acceleratorLabel);
            runOnUiThread(() -> stats.setText(text));
        } catch (IOException | RuntimeException | LinkageError e) {
            // LinkageError: a native library that does not load on this Android version.
            Log.e(TAG, "cannot load the model", e);
            runOnUiThread(() -> stats.setText("cannot load the model: " + e.getMessage()));
        }
    }

    private void startCamera() {
        ProcessCameraProvider.getInstance(this).addListener(() -> {
            try {
                cameraProvider = ProcessCameraProvider.getInstance(this).get();
            } catch (Exception e) {
                stats.setText("camera unavailable: " + e.getMessage());
                return;
            }
            // Preview and analysis share one aspect ratio, so the preview's centre square (FILL_CENTER
            // in a square view) is the analysis frame's centre square that the model sees.
            ResolutionSelector selector = new ResolutionSelector.Builder()
                    .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY).build();
            Preview previewUseCase = new Preview.Builder().setResolutionSelector(selector).build();
            previewUseCase.setSurfaceProvider(preview.getSurfaceProvider());
            ImageAnalysis analysis = new ImageAnalysis.Builder()
                    .setResolutionSelector(selector)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .build();
            analysis.setAnalyzer(worker, this::analyse);
            CameraSelector camera = frontCamera ? CameraSelector.DEFAULT_FRONT_CAMERA : CameraSelector.DEFAULT_BACK_CAMERA;
            cameraProvider.unbindAll();
            try {
                cameraProvider.bindToLifecycle(this, camera, previewUseCase, analysis);
            } catch (IllegalArgumentException e) {
                stats.setText("no " + (frontCamera ? "front" : "back") + " camera");
            } catch (IllegalStateException e) { // the activity is being destroyed, or too many use cases
                stats.setText("camera unavailable: " + e.getMessage());
            }
        }, ContextCompat.getMainExecutor(this));
    }

    /** Worker thread: one camera frame. Never throws: a failure is shown and the next frame tried. */
    private void analyse(ImageProxy image) {
        try {
            if (segmenter == null || photoMode) return;
            Bitmap frame = image.toBitmap();
            int w = frame.getWidth(), h = frame.getHeight();
            if (framePixels == null || framePixels.length != w * h) framePixels = new int[w * h];
            frame.getPixels(framePixels, 0, w, 0, 0, w, h);
            FramePipeline.Settings settings = settings()
                    .live(image.getImageInfo().getRotationDegrees(), frontCamera) // the preview shows the front camera mirrored
                    .steady(steady, restartSmoothing.getAndSet(false))
                    .maxSide(LIVE_EFFECT_SIDE)
                    .build();
            FramePipeline.Output out = pipeline.process(framePixels, w, h, settings, this::infer);
            Bitmap shown = toBitmap(out.argb, out.width, out.height, true);
            long now = SystemClock.elapsedRealtimeNanos();
            if (lastFrameNanos != 0) {
                double instant = 1e9 / (now - lastFrameNanos);
                fps = fps == 0 ? instant : 0.9 * fps + 0.1 * instant; // smoothed for reading
            }
            lastFrameNanos = now;
            failedFrames = 0;
            runOnUiThread(() -> {
                if (photoMode) return;
                overlayView.setImageBitmap(shown);
                stats.setText(statsText(fps));
            });
        } catch (RuntimeException | OutOfMemoryError e) {
            failedFrames++;
            if (failedFrames == 1) Log.e(TAG, "frame failed", e); // once per run of failures, not every frame
            String text = "frame failed (" + failedFrames + "): " + e;
            runOnUiThread(() -> stats.setText(text));
        } finally {
            image.close();
        }
    }

    private volatile String lastInference = "";

    /** The UI's current choices that every frame and photo share (read from volatile fields, never views). */
    private FramePipeline.Settings.Builder settings() {
        return FramePipeline.Settings.builder()
                .effects(effectsMode)
                .alpha(alpha)
                .show(hairOn, lipsOn, browsOn, smoothOn);
    }

    /** Worker thread: the model on one input image, for the pipeline; keeps the time it took for the stats. */
    private FramePipeline.Scores infer(int[] input) {
        Segmenter.Result r = segmenter.run(input);
        lastInference = String.format("%s  %.1f ms", segmenter.acceleratorLabel, r.inferenceMs);
        return new FramePipeline.Scores(r.scores, r.height, r.width);
    }

    /** Live frames draw into two bitmaps used in turn (no allocation per frame); a photo gets its own. */
    private Bitmap toBitmap(int[] argb, int w, int h, boolean live) {
        if (!live) return Bitmap.createBitmap(argb, w, h, Bitmap.Config.ARGB_8888);
        shownTurn ^= 1;
        Bitmap b = shownBitmaps[shownTurn];
        if (b == null || b.getWidth() != w || b.getHeight() != h) {
            b = Bitmap.createBitmap(w, h, Bitmap.Config.ARGB_8888);
            shownBitmaps[shownTurn] = b;
        }
        b.setPixels(argb, 0, w, 0, 0, w, h);
        return b;
    }

    private String statsText(double fps) {
        return String.format("%s\n%.1f FPS", lastInference, fps);
    }

    private void onPhotoPicked(Uri uri) {
        if (uri == null) return;
        photoMode = true;
        if (cameraProvider != null) cameraProvider.unbindAll();
        overlayView.setImageBitmap(null);
        worker.execute(() -> {
            try {
                lastPhoto = decode(uri);
            } catch (IOException | RuntimeException | OutOfMemoryError e) {
                Log.e(TAG, "cannot read the photo", e);
                runOnUiThread(() -> stats.setText("cannot read the photo: " + e));
                return;
            }
            processPhoto();
        });
    }

    private void refreshPhoto() {
        if (photoMode && lastPhoto != null) worker.execute(this::processPhoto);
    }

    /**
     * Worker thread: the still photo through the same pipeline as the camera frames (padded to a
     * square there, so the model sees it undistorted, and cropped back). Never throws: a failure is
     * shown on screen.
     */
    private void processPhoto() {
        if (segmenter == null || lastPhoto == null) return;
        try {
            int w = lastPhoto.getWidth(), h = lastPhoto.getHeight();
            int[] pixels = new int[w * h];
            lastPhoto.getPixels(pixels, 0, w, 0, 0, w, h);
            FramePipeline.Output out = pipeline.process(pixels, w, h, settings().build(), this::infer);
            Bitmap shown = toBitmap(out.argb, out.width, out.height, false);
            runOnUiThread(() -> {
                photoView.setVisibility(View.VISIBLE);
                photoView.setImageBitmap(shown);
                stats.setText(lastInference);
            });
        } catch (RuntimeException | OutOfMemoryError e) {
            Log.e(TAG, "photo failed", e);
            runOnUiThread(() -> stats.setText("photo failed: " + e));
        }
    }

    /** Decodes a gallery image, subsampled so its long side is at most about PHOTO_MAX_SIDE. */
    private Bitmap decode(Uri uri) throws IOException {
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            BitmapFactory.decodeStream(in, null, bounds);
        }
        BitmapFactory.Options opts = new BitmapFactory.Options();
        opts.inSampleSize = 1;
        while (Math.max(bounds.outWidth, bounds.outHeight) / (opts.inSampleSize * 2) >= PHOTO_MAX_SIDE) opts.inSampleSize *= 2;
        opts.inPreferredConfig = Bitmap.Config.ARGB_8888;
        Bitmap b;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            b = BitmapFactory.decodeStream(in, null, opts);
        }
        if (b == null) throw new IOException("not an image");
        // BitmapFactory ignores EXIF: turn the pixels as the camera meant them (rotation and mirror).
        int degrees = 0;
        boolean flipped = false;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            if (in != null) {
                ExifInterface exif = new ExifInterface(in);
                degrees = exif.getRotationDegrees();
                flipped = exif.isFlipped();
            }
        } catch (IOException e) {
            Log.w(TAG, "no EXIF orientation", e); // e.g. a PNG: use it as stored
        }
        if (degrees == 0 && !flipped) return b;
        Matrix m = new Matrix();
        m.postRotate(degrees); // rotate, then mirror: TRANSPOSE = 90 + flip, FLIP_VERTICAL = 180 + flip
        if (flipped) m.postScale(-1, 1);
        return Bitmap.createBitmap(b, 0, 0, b.getWidth(), b.getHeight(), m, true);
    }

    @Override
    protected void onDestroy() {
        super.onDestroy();
        worker.execute(() -> {
            if (segmenter != null) segmenter.close();
            segmenter = null;
        });
        worker.shutdown();
    }
}
