// Code tables for `SyntheaGenerator`.
//
// Every code, description, unit and category below is vocabulary (SNOMED CT, LOINC, RxNorm,
// CVX) as it appears in the Synthea CSV sample in testdata/patients/synthea_csv_59/; the
// weights, rates and value ranges were measured on that sample with python3 (59 patients) and
// rounded. No row, identifier or name of any sample patient is carried here. Synthea writes
// a description's commas as double spaces, so the descriptions keep that form.

// MARK: - Concepts

/// A code and its description, both already in CSV form (quoted if they need it).
struct SyntheaConcept: Sendable {
    let code: [UInt8]
    let description: [UInt8]
    /// `CODE,DESCRIPTION` as one CSV fragment.
    let codeAndDescription: [UInt8]

    init(_ code: String, _ description: String) {
        self.code = CSVText.field(code)
        self.description = CSVText.field(description)
        self.codeAndDescription = self.code + [UInt8(ascii: ",")] + self.description
    }
}

/// A list of items with integer weights, picked with the generator's own PRNG.
struct SyntheaWeighted<Item: Sendable>: Sendable {
    let items: [Item]
    let cumulative: [UInt64]

    init(_ pairs: [(Item, Int)]) {
        precondition(!pairs.isEmpty, "a weighted table needs at least one item")
        var total: UInt64 = 0
        var items: [Item] = []
        var cumulative: [UInt64] = []
        for (item, weight) in pairs {
            precondition(weight > 0, "weights are positive")
            total += UInt64(weight)
            items.append(item)
            cumulative.append(total)
        }
        self.items = items
        self.cumulative = cumulative
    }

    func pick(_ rng: inout SyntheaRandom) -> Item {
        let r = rng.below(cumulative[cumulative.count - 1])
        var index = 0
        while cumulative[index] <= r { index += 1 }
        return items[index]
    }
}

// MARK: - Observations

/// One kind of observation: its fixed CSV fragments and, for numeric kinds, a value model.
struct SyntheaObservationKind: Sendable {
    /// `CATEGORY,CODE,DESCRIPTION,` (what follows the ENCOUNTER column).
    let head: [UInt8]
    /// `,UNITS,TYPE` (the row's last fields).
    let tail: [UInt8]
    let mean: Double
    let sd: Double
    let low: Double
    let high: Double

    init(_ category: String, _ code: String, _ description: String, _ units: String, numeric: Bool,
         mean: Double = 0, sd: Double = 0, low: Double = 0, high: Double = 0) {
        head = CSVText.field(category) + [UInt8(ascii: ",")] + CSVText.field(code) + [UInt8(ascii: ",")]
            + CSVText.field(description) + [UInt8(ascii: ",")]
        tail = [UInt8(ascii: ",")] + CSVText.field(units) + Array((numeric ? ",numeric" : ",text").utf8)
        self.mean = mean
        self.sd = sd
        self.low = low
        self.high = high
    }

    static func numeric(_ category: String, _ code: String, _ description: String, _ units: String,
                        _ mean: Double, _ sd: Double, _ low: Double, _ high: Double) -> SyntheaObservationKind {
        SyntheaObservationKind(category, code, description, units, numeric: true, mean: mean, sd: sd, low: low, high: high)
    }

    static func text(_ category: String, _ code: String, _ description: String, _ units: String = "") -> SyntheaObservationKind {
        SyntheaObservationKind(category, code, description, units, numeric: false)
    }
}

/// A text observation with weighted answers (CSV-ready).
struct SyntheaSurveyItem: Sendable {
    let kind: SyntheaObservationKind
    let answers: SyntheaWeighted<[UInt8]>

    init(_ kind: SyntheaObservationKind, _ answers: [(String, Int)]) {
        self.kind = kind
        self.answers = SyntheaWeighted(answers.map { (CSVText.field($0.0), $0.1) })
    }
}

enum SyntheaObs {
    // Vital signs (sample means/sds for the population; the generator models most of them per patient).
    static let bodyHeight = SyntheaObservationKind.numeric("vital-signs", "8302-2", "Body Height", "cm", 151.5, 34.2, 45, 200)
    static let painScore = SyntheaObservationKind.numeric("vital-signs", "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 2.3, 1.6, 0, 9)
    static let bodyWeight = SyntheaObservationKind.numeric("vital-signs", "29463-7", "Body Weight", "kg", 63.4, 28.7, 2.5, 180)
    static let bmi = SyntheaObservationKind.numeric("vital-signs", "39156-5", "Body Mass Index", "kg/m2", 24.9, 5.4, 12, 55)
    static let bmiPercentile = SyntheaObservationKind.numeric("vital-signs", "59576-9", "Body mass index (BMI) [Percentile] Per age and gender", "%", 49.4, 29.7, 1, 99.9)
    static let weightForLength = SyntheaObservationKind.numeric("vital-signs", "77606-2", "Weight-for-length Per age and sex", "%", 52.4, 29.1, 1, 99.9)
    static let headCircumference = SyntheaObservationKind.numeric("vital-signs", "9843-4", "Head Occipital-frontal circumference", "cm", 45.5, 4.5, 32, 52)
    static let diastolic = SyntheaObservationKind.numeric("vital-signs", "8462-4", "Diastolic Blood Pressure", "mm[Hg]", 84.3, 11.7, 55, 125)
    static let systolic = SyntheaObservationKind.numeric("vital-signs", "8480-6", "Systolic Blood Pressure", "mm[Hg]", 126.7, 18.1, 90, 200)
    static let heartRate = SyntheaObservationKind.numeric("vital-signs", "8867-4", "Heart rate", "/min", 83.7, 20.6, 50, 200)
    static let respiratoryRate = SyntheaObservationKind.numeric("vital-signs", "9279-1", "Respiratory rate", "/min", 14.7, 3.8, 12, 40)
    static let bodyTemperature = SyntheaObservationKind.numeric("vital-signs", "8310-5", "Body temperature", "Cel", 38.7, 1.6, 36.4, 42.1)
    static let oxygenSaturationArterial = SyntheaObservationKind.numeric("vital-signs", "2708-6", "Oxygen saturation in Arterial blood", "%", 81.8, 4.3, 75, 89)
    static let tobacco = SyntheaObservationKind.text("survey", "72166-2", "Tobacco smoking status NHIS")

    // Quality of life, one each per year of history (Synthea writes them without a category).
    static let qaly = SyntheaObservationKind.numeric("", "QALY", "QALY", "a", 31.2, 21.0, 0, 100)
    static let daly = SyntheaObservationKind.numeric("", "DALY", "DALY", "a", 2.7, 4.9, 0, 100)
    static let qols = SyntheaObservationKind.numeric("", "QOLS", "QOLS", "{score}", 0.87, 0.25, 0, 1)

    // Screening scores.
    static let phq2 = SyntheaObservationKind.numeric("survey", "55758-7", "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]", "{score}", 1.3, 1.0, 0, 6)
    static let phq9 = SyntheaObservationKind.numeric("survey", "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]", "{score}", 10.9, 6.1, 3, 27)
    static let phq9Teen = SyntheaObservationKind.numeric("survey", "89204-2", "Patient Health Questionnaire-9: Modified for Teens total score [Reported.PHQ.Teen]", "{score}", 3.7, 5.4, 0, 27)
    static let gad7 = SyntheaObservationKind.numeric("survey", "70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]", "{score}", 3.5, 3.4, 0, 21)
    static let auditC = SyntheaObservationKind.numeric("survey", "75626-2", "Total score [AUDIT-C]", "{score}", 1.7, 1.8, 0, 12)
    static let hark = SyntheaObservationKind.numeric("survey", "76504-0", "Total score [HARK]", "{score}", 0.16, 0.65, 0, 4)
    static let dast10 = SyntheaObservationKind.numeric("survey", "82667-7", "Total score [DAST-10]", "{score}", 1.3, 1.3, 0, 10)
    static let morseScore = SyntheaObservationKind.numeric("survey", "59460-6", "Fall risk total [Morse Fall Scale]", "{#}", 42, 33, 0, 125)
    static let morseLevel = SyntheaObservationKind.text("survey", "59461-4", "Fall risk level [Morse Fall Scale]")
    static let painReported = SyntheaObservationKind.numeric("survey", "38208-5", "Pain severity - Reported", "{score}", 5.8, 2.4, 1, 10)
    static let painInterferenceActivity = SyntheaObservationKind.numeric("survey", "91146-1", "What number best describes how  during the past week  pain has interfered with your general activity?", "{score}", 5.4, 2.2, 1, 10)
    static let painInterferenceEnjoyment = SyntheaObservationKind.numeric("survey", "91145-3", "What number best describes how  during the past week  pain has interfered with your enjoyment of life?", "{score}", 6.0, 2.8, 1, 10)
    static let painAverage = SyntheaObservationKind.numeric("survey", "75893-8", "What number best describes your pain on average in the past week?", "{score}", 6.3, 2.1, 1, 10)
    static let mmse = SyntheaObservationKind.numeric("survey", "72106-8", "Total score [MMSE]", "{score}", 11.9, 8.4, 0, 30)

    // Diabetes and metabolic markers (modelled per patient by the generator).
    static let hba1c = SyntheaObservationKind.numeric("laboratory", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 6.1, 0.2, 4.0, 14.0)
    static let glucose = SyntheaObservationKind.numeric("laboratory", "2339-0", "Glucose", "mg/dL", 81.1, 10.3, 60, 400)
    static let microalbumin = SyntheaObservationKind.numeric("laboratory", "14959-1", "Microalbumin Creatinine Ratio", "mg/g", 7.1, 4.9, 0.5, 300)
    static let egfr = SyntheaObservationKind.numeric("laboratory", "33914-3", "Estimated Glomerular Filtration Rate", "mL/min/{1.73_m2}", 96.7, 24.8, 15, 140)

    // Lipid panel.
    static let totalCholesterol = SyntheaObservationKind.numeric("laboratory", "2093-3", "Total Cholesterol", "mg/dL", 180.5, 14.7, 140, 320)
    static let triglycerides = SyntheaObservationKind.numeric("laboratory", "2571-8", "Triglycerides", "mg/dL", 136.9, 30.3, 60, 450)
    static let ldl = SyntheaObservationKind.numeric("laboratory", "18262-6", "Low Density Lipoprotein Cholesterol", "mg/dL", 94.6, 20.8, 50, 220)
    static let hdl = SyntheaObservationKind.numeric("laboratory", "2085-9", "High Density Lipoprotein Cholesterol", "mg/dL", 65.2, 11.8, 25, 90)

    /// Basic metabolic panel without glucose (glucose is modelled).
    static let metabolicRest: [SyntheaObservationKind] = [
        .numeric("laboratory", "6299-2", "Urea Nitrogen", "mg/dL", 13.4, 3.7, 7, 20),
        .numeric("laboratory", "38483-4", "Creatinine", "mg/dL", 1.6, 0.9, 0.6, 3.5),
        .numeric("laboratory", "49765-1", "Calcium", "mg/dL", 9.4, 0.5, 8.5, 10.2),
        .numeric("laboratory", "2947-0", "Sodium", "mmol/L", 140.2, 2.4, 136, 144),
        .numeric("laboratory", "6298-4", "Potassium", "mmol/L", 4.5, 0.4, 3.7, 5.2),
        .numeric("laboratory", "2069-3", "Chloride", "mmol/L", 106.1, 2.9, 101, 111),
        .numeric("laboratory", "20565-8", "Carbon Dioxide", "mmol/L", 24.3, 2.8, 20, 29),
    ]

    /// Hepatic and protein panel seen with the metabolic panel at follow-up visits.
    static let hepaticPanel: [SyntheaObservationKind] = [
        .numeric("laboratory", "33914-3", "Glomerular filtration rate/1.73 sq M.predicted", "mL/min", 46.2, 34.9, 5, 90),
        .numeric("laboratory", "2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/dL", 38.2, 32.3, 5.5, 80),
        .numeric("laboratory", "1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 4.5, 0.6, 3.5, 5.5),
        .numeric("laboratory", "10834-0", "Globulin [Mass/volume] in Serum by calculation", "g/L", 2.8, 0.5, 2, 3.5),
        .numeric("laboratory", "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 5.5, 5.4, 0.1, 15),
        .numeric("laboratory", "6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 75.9, 28, 20, 140),
        .numeric("laboratory", "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 30, 15.5, 1.5, 60),
        .numeric("laboratory", "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 23.6, 9.9, 2, 40),
    ]

    /// Complete blood count; the last three appear in about two thirds of the panels.
    static let cbc: [SyntheaObservationKind] = [
        .numeric("laboratory", "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 6.0, 2.3, 3, 10.5),
        .numeric("laboratory", "789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.7, 0.5, 3.8, 5.7),
        .numeric("laboratory", "718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 14.0, 1.75, 11.1, 17.5),
        .numeric("laboratory", "4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 42.3, 3.9, 35, 50),
        .numeric("laboratory", "787-2", "MCV [Entitic volume] by Automated count", "fL", 87.5, 4.4, 79.7, 96.8),
        .numeric("laboratory", "785-6", "MCH [Entitic mass] by Automated count", "pg", 29.8, 1.6, 26.9, 32.9),
        .numeric("laboratory", "786-4", "MCHC [Mass/volume] by Automated count", "g/dL", 34.2, 1.1, 31.5, 36),
        .numeric("laboratory", "21000-5", "Erythrocyte distribution width [Entitic volume] by Automated count", "fL", 42.6, 2.1, 39.2, 46),
        .numeric("laboratory", "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 256.8, 105.9, 100, 450),
        .numeric("laboratory", "32207-3", "Platelet distribution width [Entitic volume] in Blood by Automated count", "fL", 327.6, 101.2, 150, 520),
        .numeric("laboratory", "32623-1", "Platelet mean volume [Entitic volume] in Blood by Automated count", "fL", 10.8, 0.9, 9.5, 12.3),
    ]

    /// Inpatient (COVID-19 isolation) daily laboratory additions.
    static let inpatientLabs: [SyntheaObservationKind] = [
        .numeric("laboratory", "2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "ug/L", 902, 649, 36, 2000),
        .numeric("laboratory", "89579-7", "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method", "pg/mL", 15.4, 20.1, 0, 65),
        .numeric("laboratory", "48065-7", "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma", "ug/mL", 5.7, 7.7, 0.2, 25),
        .numeric("laboratory", "14804-9", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma by Lactate to pyruvate reaction", "U/L", 306, 68, 200, 410),
        .numeric("laboratory", "2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 71, 56, 17, 201),
        .numeric("laboratory", "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 11.7, 2.7, 8, 17),
        .numeric("laboratory", "5902-2", "Prothrombin time (PT)", "s", 12.4, 1.1, 10, 14),
        .numeric("laboratory", "6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", 2.9, 1.3, 1, 4.7),
        .numeric("laboratory", "33959-8", "Procalcitonin [Mass/volume] in Serum or Plasma", "ng/mL", 0.2, 0.15, 0, 0.5),
        .numeric("laboratory", "770-8", "Neutrophils/100 leukocytes in Blood by Automated count", "%", 28.9, 8.9, 11, 44),
        .numeric("laboratory", "736-9", "Lymphocytes/100 leukocytes in Blood by Automated count", "%", 14.6, 5.8, 5, 25),
        .numeric("laboratory", "5905-5", "Monocytes/100 leukocytes in Blood by Automated count", "%", 10.3, 2.7, 5.8, 14.7),
        .numeric("laboratory", "713-8", "Eosinophils/100 leukocytes in Blood by Automated count", "%", 4.5, 1.0, 3, 6),
        .numeric("laboratory", "706-2", "Basophils/100 leukocytes in Blood by Automated count", "%", 2.9, 0.6, 2, 4),
    ]

    /// Arterial blood gas in intensive care.
    static let bloodGas: [SyntheaObservationKind] = [
        .numeric("laboratory", "2744-1", "pH of Arterial blood", "[pH]", 7.04, 0.16, 6.8, 7.3),
        .numeric("laboratory", "2019-8", "Carbon dioxide [Partial pressure] in Arterial blood", "mm[Hg]", 39.6, 2.9, 35, 44),
        .numeric("laboratory", "2703-7", "Oxygen [Partial pressure] in Arterial blood", "mm[Hg]", 48.4, 5.7, 37, 58),
        .numeric("laboratory", "1960-4", "Bicarbonate [Moles/volume] in Arterial blood", "mmol/L", 24.6, 1.5, 22, 27),
        .numeric("laboratory", "19994-3", "Oxygen/Inspired gas setting [Volume Fraction] Ventilator", "%", 64.1, 17.2, 33, 97),
    ]

    /// Allergy work-up: IgE against common allergens.
    static let allergyPanel: [SyntheaObservationKind] = [
        ("6206-7", "Peanut IgE Ab in Serum"), ("6273-7", "Walnut IgE Ab in Serum"), ("6082-2", "Codfish IgE Ab in Serum"),
        ("6246-3", "Shrimp IgE Ab in Serum"), ("6276-0", "Wheat IgE Ab in Serum"), ("6106-9", "Egg white IgE Ab in Serum"),
        ("6248-9", "Soybean IgE Ab in Serum"), ("7258-7", "Cow milk IgE Ab in Serum"), ("6189-5", "White oak IgE Ab in Serum"),
        ("6085-5", "Common Ragweed IgE Ab in Serum"), ("6833-8", "Cat dander IgE Ab in Serum"),
        ("6095-4", "American house dust mite IgE Ab in Serum"), ("6075-6", "Cladosporium herbarum IgE Ab in Serum"),
        ("6844-5", "Honey bee IgE Ab in Serum"), ("6158-0", "Latex IgE Ab in Serum"),
    ].map { SyntheaObservationKind.numeric("laboratory", $0.0, $0.1, "kU/L", 0.16, 0.1, 0, 0.35) }

    static let fev1fvc = SyntheaObservationKind.numeric("procedure", "19926-5", "FEV1/FVC", "%", 41, 20.5, 12, 80)
    static let dxaTScore = SyntheaObservationKind.numeric("procedure", "38265-5", "DXA [T-score] Bone density", "{T-score}", -0.65, 1.06, -4, 1)
    static let ejectionFraction = SyntheaObservationKind.numeric("laboratory", "10230-1", "Left ventricular Ejection fraction", "%", 32.4, 5.8, 20, 45)
    static let ntProBNP = SyntheaObservationKind.numeric("laboratory", "33762-6", "NT-proBNP", "pg/mL", 782, 599, 300, 2000)
    static let covidPCR = SyntheaObservationKind.text("laboratory", "94531-1", "SARS-CoV-2 RNA Pnl Resp NAA+probe")
    static let drugScreen = SyntheaObservationKind.text("laboratory", "65750-2", "Drugs of abuse 5 panel - Urine by Screen method", "n/a")
    static let nyhaFunctional = SyntheaObservationKind.text("laboratory", "88020-3", "Functional capacity NYHA")
    static let causeOfDeath = SyntheaObservationKind.text("exam", "69453-9", "Cause of Death [US Standard Certificate of Death]", "null")

    /// Protocol for Responding to and Assessing Patients' Assets, Risks and Experiences
    /// (PRAPARE): the social-needs questionnaire Synthea asks at adult check-ups. Address,
    /// race, ethnicity, insurance, household size and income are answered by the generator
    /// from the patient's own data.
    static let prapareAddress = SyntheaObservationKind.text("laboratory", "56799-0", "What address do you live at?")
    static let prapareRace = SyntheaObservationKind.text("survey", "32624-9", "Which race(s) are you?")
    static let prapareHispanic = SyntheaObservationKind.text("survey", "56051-6", "Are you Hispanic or Latino?")
    static let prapareLanguage = SyntheaObservationKind.text("survey", "54899-0", "What language are you most comfortable speaking?")
    static let prapareInsurance = SyntheaObservationKind.text("survey", "76437-3", "What is your main insurance?")
    static let prapareHousehold = SyntheaObservationKind.numeric("survey", "63512-8", "How many family members  including yourself  do you currently live with?", "{#}", 4.4, 2.1, 1, 8)
    static let prapareIncome = SyntheaObservationKind.text("survey", "63586-2", "During the past year  what was the total combined income for you and the family members you live with? This information will help us determine if you are eligible for any benefits.", "/a")
    static let prapareItems: [SyntheaSurveyItem] = [
        SyntheaSurveyItem(.text("survey", "76501-6", "In the past year  have you been afraid of your partner or ex-partner?"), [("No", 347), ("Yes", 12)]),
        SyntheaSurveyItem(.text("survey", "93026-3", "Do you feel physically and emotionally safe where you currently live?"),
                          [("Yes", 338), ("No", 15), ("Unsure", 5), ("I choose not to answer this question", 1)]),
        SyntheaSurveyItem(.text("survey", "93027-1", "Are you a refugee?"), [("No", 287), ("Yes", 71), ("I choose not to answer this question", 1)]),
        SyntheaSurveyItem(.text("survey", "93028-9", "In the past year  have you spent more than 2 nights in a row in a jail  prison  detention center  or juvenile correctional facility?"),
                          [("No", 292), ("Yes", 65), ("I choose not to answer this question", 2)]),
        SyntheaSurveyItem(.text("survey", "93038-8", "Stress is when someone feels tense  nervous  anxious or can't sleep at night because their mind is troubled. How stressed are you?"),
                          [("Not at all", 150), ("A little bit", 94), ("Somewhat", 74), ("Quite a bit", 26), ("Very much", 11), ("I choose not to answer this question", 4)]),
        SyntheaSurveyItem(.text("survey", "93029-7", "How often do you see or talk to people that you care about and feel close to (For example: talking to friends on the phone  visiting friends or family  going to church or club meetings)?"),
                          [("3 to 5 times a week", 148), ("5 or more times a week", 142), ("1 or 2 times a week", 37), ("Less than once a week", 27), ("I choose not to answer this question", 5)]),
        SyntheaSurveyItem(.text("survey", "93030-5", "Has lack of transportation kept you from medical appointments  meetings  work  or from getting things needed for daily living?"),
                          [("No", 324), ("Yes  it has kept me from non-medical meetings  appointments  work  or from getting things that I need", 22),
                           ("Yes  it has kept me from medical appointments or from getting my medications", 13)]),
        SyntheaSurveyItem(.text("survey", "93031-3", "In the past year  have you or any family members you live with been unable to get any of the following when it was really needed?"),
                          [("I choose not to answer this question", 237), ("Food", 52), ("Medicine or Any Health Care", 29), ("Utilities", 24), ("Clothing", 7), ("Other  Please write", 5), ("Phone", 5)]),
        SyntheaSurveyItem(.text("survey", "67875-5", "What is your current work situation?"),
                          [("Full-time work", 189), ("Unemployed (finding)", 86), ("Part-time or temporary work", 56), ("Otherwise unemployed but not seeking work", 25), ("I choose not to answer this question", 3)]),
        SyntheaSurveyItem(.text("survey", "82589-3", "What is the highest level of school that you have finished?"),
                          [("More than high school", 179), ("High school diploma or GED", 146), ("Less than high school degree", 30), ("I choose not to answer this question", 4)]),
        SyntheaSurveyItem(.text("survey", "93033-9", "Are you worried about losing your housing?"), [("No", 279), ("Yes", 79), ("I choose not to answer this question", 1)]),
        SyntheaSurveyItem(.text("survey", "71802-3", "What is your housing situation today?"), [("I have housing", 358), ("I choose not to answer this question", 1)]),
        SyntheaSurveyItem(.text("survey", "93034-7", "Have you been discharged from the armed forces of the United States?"), [("No", 355), ("I choose not to answer this question", 4)]),
        SyntheaSurveyItem(.text("survey", "93035-4", "At any point in the past 2 years  has season or migrant farm work been your or your family's main source of income?"),
                          [("No", 343), ("Yes", 11), ("I choose not to answer this question", 5)]),
    ]

    static let tobaccoStatus: [[UInt8]] = ["Never smoker", "Former smoker", "Current every day smoker"].map { CSVText.field($0) }
    static let morseLevels: [[UInt8]] = ["Low Risk (MFS Score 0 - 24)", "Moderate Risk (MFS Score 25 - 45)", "High Risk (MFS Score 50+)"].map { CSVText.field($0) }
    static let detected = CSVText.field("Detected (qualifier value)")
    static let notDetected = CSVText.field("Not detected (qualifier value)")
    static let negative = CSVText.field("Negative (qualifier value)")
    static let nyhaClasses: [[UInt8]] = ["Class I", "Class II", "Class III", "Class IV"].map { CSVText.field($0) }
}

// MARK: - Encounters

struct SyntheaEncounterType: Sendable {
    /// `ENCOUNTERCLASS,CODE,DESCRIPTION`
    let fragment: [UInt8]
    let baseCost: Double

    init(_ encounterClass: String, _ code: String, _ description: String, cost: Double) {
        fragment = CSVText.field(encounterClass) + [UInt8(ascii: ",")] + CSVText.field(code) + [UInt8(ascii: ",")] + CSVText.field(description)
        baseCost = cost
    }
}

enum SyntheaEncounters {
    static let generalExam = SyntheaEncounterType("wellness", "162673000", "General examination of patient (procedure)", cost: 146.76)
    static let wellChild = SyntheaEncounterType("wellness", "410620009", "Well child visit (procedure)", cost: 146.76)
    static let checkUpOutpatient = SyntheaEncounterType("outpatient", "185349003", "Encounter for check up (procedure)", cost: 82.02)
    static let checkUpAmbulatory = SyntheaEncounterType("ambulatory", "185349003", "Encounter for 'check-up'", cost: 82.02)
    static let deathCertification = SyntheaEncounterType("wellness", "308646001", "Death Certification", cost: 146.76)
    static let symptom = SyntheaEncounterType("ambulatory", "185345009", "Encounter for symptom", cost: 82.02)
    static let problemOutpatient = SyntheaEncounterType("outpatient", "185347001", "Encounter for problem (procedure)", cost: 82.02)
    static let problemAmbulatory = SyntheaEncounterType("ambulatory", "185347001", "Encounter for problem", cost: 82.02)
    static let followUp = SyntheaEncounterType("ambulatory", "390906007", "Follow-up encounter", cost: 82.02)
    static let hypertensionFollowUp = SyntheaEncounterType("ambulatory", "390906007", "Hypertension follow-up encounter", cost: 82.02)
    static let asthmaFollowUp = SyntheaEncounterType("ambulatory", "394701000", "Asthma follow-up", cost: 82.02)
    static let outpatientProcedure = SyntheaEncounterType("ambulatory", "371883000", "Outpatient procedure", cost: 136.70)
    static let prenatalInitial = SyntheaEncounterType("ambulatory", "424441002", "Prenatal initial visit", cost: 136.70)
    static let prenatal = SyntheaEncounterType("ambulatory", "424619006", "Prenatal visit", cost: 136.70)
    static let postnatal = SyntheaEncounterType("ambulatory", "169762003", "Postnatal visit", cost: 136.70)
    static let obstetricEmergency = SyntheaEncounterType("emergency", "183460006", "Obstetric emergency hospital admission", cost: 166.97)
    static let patientProcedureAmbulatory = SyntheaEncounterType("ambulatory", "308335008", "Patient encounter procedure (procedure)", cost: 136.70)
    static let patientProcedureOutpatient = SyntheaEncounterType("outpatient", "308335008", "Patient encounter procedure", cost: 136.70)
    static let consultation = SyntheaEncounterType("outpatient", "698314001", "Consultation for treatment", cost: 136.70)
    static let vaccination = SyntheaEncounterType("outpatient", "33879002", "Administration of vaccine to produce active immunity (procedure)", cost: 136.70)
    static let emergencyAdmission = SyntheaEncounterType("emergency", "50849002", "Emergency room admission (procedure)", cost: 166.97)
    static let emergencyRoom = SyntheaEncounterType("emergency", "50849002", "Emergency Room Admission", cost: 166.97)
    static let urgentCare = SyntheaEncounterType("urgentcare", "702927004", "Urgent care clinic (procedure)", cost: 136.70)
    static let inpatient = SyntheaEncounterType("inpatient", "183452005", "Encounter Inpatient", cost: 100.18)
    static let isolation = SyntheaEncounterType("inpatient", "1505002", "Hospital admission for isolation (procedure)", cost: 100.18)
    static let intensiveCare = SyntheaEncounterType("inpatient", "305351004", "Admission to intensive care unit (procedure)", cost: 100.18)
    static let detox = SyntheaEncounterType("inpatient", "56876005", "Drug rehabilitation and detoxification", cost: 166.97)
    static let home = SyntheaEncounterType("home", "439708006", "Home visit (procedure)", cost: 163.57)
    static let skilledNursing = SyntheaEncounterType("snf", "449411000124106", "Admission to skilled nursing facility (procedure)", cost: 183.23)
    static let hospice = SyntheaEncounterType("hospice", "305336008", "Admission to hospice (procedure)", cost: 183.23)
    static let allergyInitial = SyntheaEncounterType("ambulatory", "170837001", "Allergic disorder initial assessment", cost: 82.02)
    static let allergyFollowUp = SyntheaEncounterType("ambulatory", "170838006", "Allergic disorder follow-up assessment", cost: 82.02)
    static let cardiacArrest = SyntheaEncounterType("emergency", "410429000", "Cardiac Arrest", cost: 166.97)
    static let stroke = SyntheaEncounterType("emergency", "230690007", "Stroke", cost: 166.97)
    static let myocardialInfarction = SyntheaEncounterType("emergency", "22298006", "Myocardial Infarction", cost: 166.97)
}

// MARK: - Conditions

enum SyntheaConditions {
    // Social determinants recorded at check-ups.
    static let fullTime = SyntheaConcept("160903007", "Full-time employment (finding)")
    static let partTime = SyntheaConcept("160904001", "Part-time employment (finding)")
    static let notInLaborForce = SyntheaConcept("741062008", "Not in labor force (finding)")
    static let unemployed = SyntheaConcept("73438004", "Unemployed (finding)")
    static let stress = SyntheaConcept("73595000", "Stress (finding)")
    static let limitedSocialContact = SyntheaConcept("423315002", "Limited social contact (finding)")
    static let socialIsolation = SyntheaConcept("422650009", "Social isolation (finding)")
    static let partnerAbuse = SyntheaConcept("706893006", "Victim of intimate partner abuse (finding)")
    static let violence = SyntheaConcept("424393004", "Reports of violence in the environment (finding)")
    static let riskActivity = SyntheaConcept("160968000", "Risk activity involvement (finding)")
    static let severeAnxiety = SyntheaConcept("80583007", "Severe anxiety (panic) (finding")
    /// One-off findings, each with the share of adults who get it at some check-up, and whether it ends.
    static let onceFindings: [(SyntheaConcept, Double, Bool)] = [
        (SyntheaConcept("266948004", "Has a criminal record (finding)"), 0.19, false),
        (SyntheaConcept("105531004", "Housing unsatisfactory (finding)"), 0.15, false),
        (SyntheaConcept("446654005", "Refugee (person)"), 0.12, false),
        (SyntheaConcept("266934004", "Transport problems (finding)"), 0.10, false),
        (SyntheaConcept("713458007", "Lack of access to transportation (finding)"), 0.08, false),
        (SyntheaConcept("10939881000119104", "Unhealthy alcohol drinking behavior (finding)"), 0.12, true),
        (SyntheaConcept("361055000", "Misuses drugs (finding)"), 0.10, true),
    ]
    static let education = SyntheaWeighted<SyntheaConcept?>([
        (SyntheaConcept("224299000", "Received higher education (finding)"), 24),
        (SyntheaConcept("5251000175109", "Received certificate of high school equivalency (finding)"), 16),
        (SyntheaConcept("224295006", "Only received primary school education (finding)"), 4),
        (nil, 8),
    ])

    // Chronic conditions.
    static let hypertension = SyntheaConcept("59621000", "Hypertension")
    static let prediabetes = SyntheaConcept("15777000", "Prediabetes")
    static let diabetes = SyntheaConcept("44054006", "Diabetes")
    static let diabetesComplications: [(SyntheaConcept, Double)] = [
        (SyntheaConcept("237602007", "Metabolic syndrome X (disorder)"), 0.45),
        (SyntheaConcept("80394007", "Hyperglycemia (disorder)"), 0.35),
        (SyntheaConcept("302870006", "Hypertriglyceridemia (disorder)"), 0.35),
        (SyntheaConcept("368581000119106", "Neuropathy due to type 2 diabetes mellitus (disorder)"), 0.25),
        (SyntheaConcept("422034002", "Diabetic retinopathy associated with type II diabetes mellitus (disorder)"), 0.2),
        (SyntheaConcept("1551000119108", "Nonproliferative diabetic retinopathy due to type 2 diabetes mellitus (disorder)"), 0.12),
    ]
    static let hyperlipidemia = SyntheaConcept("55822004", "Hyperlipidemia")
    static let obesity = SyntheaConcept("162864005", "Body mass index 30+ - obesity (finding)")
    static let anemia = SyntheaConcept("271737000", "Anemia (disorder)")
    static let chronicSinusitis = SyntheaConcept("40055000", "Chronic sinusitis (disorder)")
    static let lowBackPain = SyntheaConcept("278860009", "Chronic low back pain (finding)")
    static let neckPain = SyntheaConcept("1121000119107", "Chronic neck pain (finding)")
    static let chronicPain = SyntheaConcept("82423001", "Chronic pain")
    static let migraine = SyntheaConcept("124171000119105", "Chronic intractable migraine without aura")
    static let fibromyalgia = SyntheaConcept("203082005", "Fibromyalgia (disorder)")
    static let osteoarthritisKnee = SyntheaConcept("239873007", "Osteoarthritis of knee")
    static let osteoarthritisHip = SyntheaConcept("239872002", "Osteoarthritis of hip")
    static let childhoodAsthma = SyntheaConcept("233678006", "Childhood asthma")
    static let emphysema = SyntheaConcept("87433001", "Pulmonary emphysema (disorder)")
    static let coronaryHeartDisease = SyntheaConcept("53741008", "Coronary Heart Disease")
    static let heartFailure = SyntheaConcept("88805009", "Chronic congestive heart failure (disorder)")
    static let alzheimers = SyntheaConcept("230265002", "Familial Alzheimer's disease of early onset (disorder)")
    static let osteoporosis = SyntheaConcept("64859006", "Osteoporosis (disorder)")
    static let adhd = SyntheaConcept("192127007", "Child attention deficit disorder")
    static let allergicRhinitis = SyntheaConcept("446096008", "Perennial allergic rhinitis")
    static let allergicRhinitisSeasonal = SyntheaConcept("232353008", "Perennial allergic rhinitis with seasonal variation")
    static let rheumatoidArthritis = SyntheaConcept("69896004", "Rheumatoid arthritis")
    static let impactedMolars = SyntheaConcept("196416002", "Impacted molars")

    // Pregnancy.
    static let normalPregnancy = SyntheaConcept("72892002", "Normal pregnancy")
    static let miscarriage = SyntheaConcept("19169002", "Miscarriage in first trimester")
    static let preeclampsia = SyntheaConcept("398254007", "Preeclampsia")
    static let eclampsia = SyntheaConcept("198992004", "Antepartum eclampsia")
    static let fetusComplication = SyntheaConcept("156073000", "Fetus with unknown complication")

    // COVID-19.
    static let suspectedCovid = SyntheaConcept("840544004", "Suspected COVID-19")
    static let covid = SyntheaConcept("840539006", "COVID-19")
    static let covidSymptoms: [(SyntheaConcept, Double)] = [
        (SyntheaConcept("386661006", "Fever (finding)"), 0.8),
        (SyntheaConcept("49727002", "Cough (finding)"), 0.6),
        (SyntheaConcept("36955009", "Loss of taste (finding)"), 0.5),
        (SyntheaConcept("84229001", "Fatigue (finding)"), 0.4),
        (SyntheaConcept("248595008", "Sputum finding (finding)"), 0.4),
        (SyntheaConcept("68962001", "Muscle pain (finding)"), 0.3),
        (SyntheaConcept("57676002", "Joint pain (finding)"), 0.3),
        (SyntheaConcept("267036007", "Dyspnea (finding)"), 0.25),
        (SyntheaConcept("56018004", "Wheezing (finding)"), 0.2),
    ]
    static let pneumonia = SyntheaConcept("233604007", "Pneumonia (disorder)")
    static let hypoxemia = SyntheaConcept("389087006", "Hypoxemia (disorder)")
    static let respiratoryDistress = SyntheaConcept("271825005", "Respiratory distress (finding)")
    static let respiratoryFailure = SyntheaConcept("65710008", "Acute respiratory failure (disorder)")
    static let viralSepsis = SyntheaConcept("770349000", "Sepsis caused by virus (disorder)")
    static let septicShock = SyntheaConcept("76571007", "Septic shock (disorder)")

    // Acute events.
    static let appendicitis = SyntheaConcept("74400008", "Appendicitis")
    static let appendectomyHistory = SyntheaConcept("428251008", "History of appendectomy")
    static let appendixRupture = SyntheaConcept("47693006", "Rupture of appendix")
    static let drugOverdose = SyntheaConcept("55680006", "Drug overdose")
    static let hipFracture = SyntheaConcept("359817006", "Closed fracture of hip")
    static let cardiacArrest = SyntheaConcept("410429000", "Cardiac Arrest")
    static let cardiacArrestHistory = SyntheaConcept("429007001", "History of cardiac arrest (situation)")
    static let myocardialInfarction = SyntheaConcept("22298006", "Myocardial Infarction")
    static let myocardialInfarctionHistory = SyntheaConcept("399211009", "History of myocardial infarction (situation)")
    static let stroke = SyntheaConcept("230690007", "Stroke")
    static let concussionInjury = SyntheaConcept("110030002", "Concussion injury of brain")
    static let sepsis = SyntheaConcept("91302008", "Sepsis (disorder)")
}

// MARK: - Medications

struct SyntheaMedication: Sendable {
    let concept: SyntheaConcept
    /// Cost of one dispense.
    let baseCost: Double

    init(_ code: String, _ description: String, cost: Double) {
        concept = SyntheaConcept(code, description)
        baseCost = cost
    }
}

enum SyntheaMedications {
    // Chronic, renewed at every check-up.
    static let lisinopril = SyntheaMedication("314076", "lisinopril 10 MG Oral Tablet", cost: 0.02)
    static let amlodipine = SyntheaMedication("308136", "amLODIPine 2.5 MG Oral Tablet", cost: 0.02)
    static let hydrochlorothiazide = SyntheaMedication("310798", "Hydrochlorothiazide 25 MG Oral Tablet", cost: 0.01)
    static let simvastatin = SyntheaMedication("314231", "Simvastatin 10 MG Oral Tablet", cost: 0.02)
    static let metformin = SyntheaMedication("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", cost: 212.64)
    static let nitroglycerin = SyntheaMedication("705129", "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray", cost: 149.67)
    static let clopidogrel = SyntheaMedication("309362", "Clopidogrel 75 MG Oral Tablet", cost: 56.91)
    static let simvastatin20 = SyntheaMedication("312961", "Simvastatin 20 MG Oral Tablet", cost: 20.37)
    static let amlodipine5 = SyntheaMedication("197361", "Amlodipine 5 MG Oral Tablet", cost: 34.68)
    static let fluticasoneSalmeterol = SyntheaMedication("896209", "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler", cost: 31.42)
    static let albuterolSolution = SyntheaMedication("245314", "albuterol 5 MG/ML Inhalation Solution", cost: 1.29)
    static let albuterolInhaler = SyntheaMedication("2123111", "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", cost: 391.34)
    static let fluticasone = SyntheaMedication("895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler", cost: 27.78)
    static let carvedilol = SyntheaMedication("200033", "carvedilol 25 MG Oral Tablet", cost: 260.78)
    static let losartan = SyntheaMedication("979492", "losartan potassium 50 MG Oral Tablet", cost: 260.78)
    static let furosemide = SyntheaMedication("313988", "Furosemide 40 MG Oral Tablet", cost: 0.07)
    static let galantamine = SyntheaMedication("310436", "Galantamine 4 MG Oral Tablet", cost: 264.05)
    static let memantine = SyntheaMedication("996740", "Memantine hydrochloride 2 MG/ML Oral Solution", cost: 358.68)
    static let alendronate = SyntheaMedication("904419", "Alendronic acid 10 MG Oral Tablet", cost: 121.53)
    static let naproxen500 = SyntheaMedication("198014", "Naproxen 500 MG Oral Tablet", cost: 17.50)
    static let methotrexate = SyntheaMedication("105585", "Methotrexate 2.5 MG Oral Tablet", cost: 152.93)
    static let loratadine = SyntheaMedication("665078", "Loratadine 5 MG Chewable Tablet", cost: 7.33)
    static let cetirizine = SyntheaMedication("1014676", "cetirizine hydrochloride 5 MG Oral Tablet", cost: 17.82)
    static let epinephrineAutoInjector = SyntheaMedication("1870230", "NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector", cost: 356.81)
    static let ferrousSulfate = SyntheaMedication("310325", "ferrous sulfate 325 MG Oral Tablet", cost: 0.01)
    static let vitaminB12 = SyntheaMedication("2001499", "Vitamin B 12 5 MG/ML Injectable Solution", cost: 4.93)

    /// Pain medication for chronic pain visits and after injuries and surgery.
    static let painRelief = SyntheaWeighted<SyntheaMedication>([
        (SyntheaMedication("856987", "Acetaminophen 300 MG / Hydrocodone Bitartrate 5 MG Oral Tablet", cost: 619.56), 20),
        (SyntheaMedication("206905", "Ibuprofen 400 MG Oral Tablet [Ibu]", cost: 260.78), 29),
        (SyntheaMedication("1049625", "Acetaminophen 325 MG / Oxycodone Hydrochloride 10 MG Oral Tablet [Percocet]", cost: 260.78), 21),
        (SyntheaMedication("1049504", "Abuse-Deterrent 12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet [Oxycontin]", cost: 260.78), 18),
        (SyntheaMedication("1860491", "12 HR Hydrocodone Bitartrate 10 MG Extended Release Oral Capsule", cost: 260.78), 17),
        (SyntheaMedication("209387", "Acetaminophen 325 MG Oral Tablet [Tylenol]", cost: 260.78), 11),
        (SyntheaMedication("835603", "tramadol hydrochloride 50 MG Oral Tablet", cost: 260.78), 9),
    ])
    static let postSurgery = SyntheaWeighted<SyntheaMedication>([
        (SyntheaMedication("856987", "Acetaminophen 300 MG / HYDROcodone Bitartrate 5 MG Oral Tablet", cost: 799.81), 36),
        (SyntheaMedication("1049221", "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet", cost: 1006.69), 12),
        (SyntheaMedication("1860154", "Abuse-Deterrent 12 HR Oxycodone Hydrochloride 15 MG Extended Release Oral Tablet", cost: 706.10), 5),
        (SyntheaMedication("857005", "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet", cost: 213.71), 1),
        (SyntheaMedication("861467", "Meperidine Hydrochloride 50 MG Oral Tablet", cost: 62.91), 2),
    ])
    static let injuryRelief = SyntheaWeighted<SyntheaMedication>([
        (SyntheaMedication("849574", "Naproxen sodium 220 MG Oral Tablet", cost: 14.23), 16),
        (SyntheaMedication("313782", "Acetaminophen 325 MG Oral Tablet", cost: 6.43), 12),
        (SyntheaMedication("310965", "Ibuprofen 200 MG Oral Tablet", cost: 22.07), 10),
        (SyntheaMedication("198405", "Ibuprofen 100 MG Oral Tablet", cost: 17.87), 7),
    ])
    static let childPainRelief = SyntheaMedication("313820", "Acetaminophen 160 MG Chewable Tablet", cost: 5.14)
    static let acetaminophen325 = SyntheaMedication("313782", "Acetaminophen 325 MG Oral Tablet", cost: 6.43)
    static let coldSyrup = SyntheaMedication("1043400", "Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate 0.417 MG/ML Oral Solution", cost: 8.08)
    static let amoxicillinClavulanate = SyntheaMedication("562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", cost: 76.47)
    static let amoxicillin500 = SyntheaMedication("308192", "Amoxicillin 500 MG Oral Tablet", cost: 10.39)
    static let amoxicillin250 = SyntheaMedication("308182", "Amoxicillin 250 MG Oral Capsule", cost: 6.64)
    static let penicillin250 = SyntheaMedication("834061", "Penicillin V Potassium 250 MG Oral Tablet", cost: 14.66)
    static let penicillin500 = SyntheaMedication("834102", "Penicillin V Potassium 500 MG Oral Tablet", cost: 22.67)
    static let cefuroxime = SyntheaMedication("309097", "Cefuroxime 250 MG Oral Tablet", cost: 28.05)
    static let azithromycin = SyntheaMedication("141962", "Azithromycin 250 MG Oral Capsule", cost: 260.78)
    static let nitrofurantoin = SyntheaMedication("311989", "Nitrofurantoin 5 MG/ML Oral Suspension", cost: 1994.72)
    static let phenazopyridine = SyntheaMedication("1094107", "Phenazopyridine hydrochloride 100 MG Oral Tablet", cost: 40.53)
    static let hydrocortisone = SyntheaMedication("106258", "Hydrocortisone 10 MG/ML Topical Cream", cost: 5.14)
    static let enoxaparin = SyntheaMedication("854235", "0.4 ML Enoxaparin sodium 100 MG/ML Prefilled Syringe", cost: 18.07)
    static let acetaminophen500 = SyntheaMedication("198440", "Acetaminophen 500 MG Oral Tablet", cost: 0.03)
    static let hydroxychloroquine = SyntheaMedication("979092", "Hydroxychloroquine Sulfate 200 MG Oral Tablet", cost: 1.68)
    static let piperacillinTazobactam = SyntheaMedication("1659131", "piperacillin 2000 MG / tazobactam 250 MG Injection", cost: 260.78)
    static let vancomycin = SyntheaMedication("1807510", "150 ML vancomycin 5 MG/ML Injection", cost: 260.78)
    static let norepinephrine = SyntheaMedication("242969", "4 ML Norepinephrine 1 MG/ML Injection", cost: 3.46)
    static let alteplase = SyntheaMedication("1804799", "Alteplase 100 MG Injection", cost: 6435.20)
    static let aspirin = SyntheaMedication("243670", "Aspirin 81 MG Oral Tablet", cost: 6.20)
    static let epinephrine = SyntheaMedication("1660014", "1 ML Epinephrine 1 MG/ML Injection", cost: 4.05)
    static let amiodarone = SyntheaMedication("834357", "3 ML Amiodarone hydrocholoride 50 MG/ML Prefilled Syringe", cost: 106.96)
    static let atropine = SyntheaMedication("1190795", "Atropine Sulfate 1 MG/ML Injectable Solution", cost: 25.47)

    /// Contraceptives, renewed once a year; the flag marks long-acting methods placed by a procedure.
    static let contraceptives = SyntheaWeighted<(SyntheaMedication, SyntheaContraceptiveKind)>([
        ((SyntheaMedication("389221", "Etonogestrel 68 MG Drug Implant", cost: 509.20), .implant), 8),
        ((SyntheaMedication("1000126", "1 ML medroxyprogesterone acetate 150 MG/ML Injection", cost: 338.85), .injection), 10),
        ((SyntheaMedication("1534809", "168 HR Ethinyl Estradiol 0.00146 MG/HR / norelgestromin 0.00625 MG/HR Transdermal System", cost: 35.87), .oral), 5),
        ((SyntheaMedication("751905", "Trinessa 28 Day Pack", cost: 31.54), .oral), 4),
        ((SyntheaMedication("748879", "Levora 0.15/30 28 Day Pack", cost: 33.28), .oral), 4),
        ((SyntheaMedication("749882", "Norinyl 1+50 28 Day Pack", cost: 33.65), .oral), 4),
        ((SyntheaMedication("757594", "Jolivette 28 Day Pack", cost: 39.15), .oral), 3),
        ((SyntheaMedication("748962", "Camila 28 Day Pack", cost: 37.72), .oral), 3),
        ((SyntheaMedication("749785", "Ortho Tri-Cyclen 28 Day Pack", cost: 30.33), .oral), 3),
        ((SyntheaMedication("807283", "Mirena 52 MG Intrauterine System", cost: 1284.75), .intrauterine), 2),
        ((SyntheaMedication("1856546", "Kyleena 19.5 MG Intrauterine System", cost: 1270.68), .intrauterine), 2),
        ((SyntheaMedication("978950", "Natazia 28 Day Pack", cost: 38.27), .oral), 2),
        ((SyntheaMedication("748856", "Yaz 28 Day Pack", cost: 19.70), .oral), 1),
        ((SyntheaMedication("1367439", "NuvaRing 0.12/0.015 MG per 24HR 21 Day Vaginal Ring", cost: 41.74), .oral), 1),
    ])
}

enum SyntheaContraceptiveKind: Sendable { case oral, implant, injection, intrauterine }

// MARK: - Procedures

struct SyntheaProcedure: Sendable {
    let concept: SyntheaConcept
    let cost: Double
    /// Relative spread of the cost (0 for Synthea's flat default of 600.50).
    let spread: Double

    init(_ code: String, _ description: String, cost: Double = 600.50, spread: Double = 0) {
        concept = SyntheaConcept(code, description)
        self.cost = cost
        self.spread = spread
    }
}

enum SyntheaProcedures {
    static let socialNeeds = SyntheaProcedure("710824005", "Assessment of health and social care needs (procedure)")
    static let depressionScreening = SyntheaProcedure("171207006", "Depression screening (procedure)")
    static let depressionScreeningPlain = SyntheaProcedure("171207006", "Depression screening")
    static let phq2Screening = SyntheaProcedure("454711000124102", "Depression screening using Patient Health Questionnaire Two-Item score (procedure)")
    static let phq9Screening = SyntheaProcedure("715252007", "Depression screening using Patient Health Questionnaire Nine Item score (procedure)", cost: 41.80, spread: 0.06)
    static let medicationReconciliation = SyntheaProcedure("430193006", "Medication Reconciliation (procedure)", cost: 701.46, spread: 0.28)
    static let substanceUse = SyntheaProcedure("428211000124100", "Assessment of substance use (procedure)")
    static let anxietyAssessment = SyntheaProcedure("710841007", "Assessment of anxiety (procedure)")
    static let drugAbuseScreening = SyntheaProcedure("713106006", "Screening for drug abuse (procedure)")
    static let domesticAbuseScreening = SyntheaProcedure("866148006", "Screening for domestic abuse (procedure)")
    static let auditC = SyntheaProcedure("763302001", "Assessment using Alcohol Use Disorders Identification Test - Consumption (procedure)")
    static let morseFall = SyntheaProcedure("762993000", "Assessment using Morse Fall Scale (procedure)")
    static let crafft = SyntheaProcedure("868187001", "Assessment using Car  Relax  Alone  Forget  Friends  Trouble Screening Test (procedure)")
    static let anticipatoryGuidance = SyntheaProcedure("386516004", "Anticipatory guidance (procedure)")
    static let healthRisksEducation = SyntheaProcedure("370995009", "Health risks education (procedure)")
    static let spirometry = SyntheaProcedure("127783003", "Spirometry (procedure)", cost: 11164.64, spread: 0.28)
    static let pulmonaryRehabilitation = SyntheaProcedure("15081005", "Pulmonary rehabilitation (regime/therapy)", cost: 2604.23, spread: 0.05)
    static let colonoscopy = SyntheaProcedure("73761001", "Colonoscopy", cost: 16026.19, spread: 0.29)
    static let hemodialysis = SyntheaProcedure("302497006", "Hemodialysis (procedure)", cost: 31874.33, spread: 0.18)
    static let physicalExamBirth = SyntheaProcedure("5880005", "Physical examination following birth")
    static let kitchenPractice = SyntheaProcedure("290045001", "Kitchen practice")

    // Acute care.
    static let throatCulture = SyntheaProcedure("117015009", "Throat culture (procedure)", cost: 3083.25, spread: 0.28)
    static let respiratoryFunction = SyntheaProcedure("23426006", "Measurement of respiratory function (procedure)", cost: 495.02, spread: 0.28)
    static let sputumExamination = SyntheaProcedure("269911007", "Sputum examination (procedure)", cost: 6765.53, spread: 0.2)
    static let chestXRay = SyntheaProcedure("399208008", "Plain chest X-ray (procedure)", cost: 9481.28, spread: 0.3)
    static let faceMask = SyntheaProcedure("261352009", "Face mask (physical object)", cost: 3.51, spread: 0.2)
    static let urineCulture = SyntheaProcedure("117010004", "Urine culture", cost: 3053.38, spread: 0.28)
    static let boneImmobilization = SyntheaProcedure("274474001", "Bone immobilization")
    static let sutureWound = SyntheaProcedure("288086009", "Suture open wound", cost: 12812.48, spread: 0.18)
    static let tetanusAntitoxin = SyntheaProcedure("384700001", "Injection of tetanus antitoxin")
    static let orthopedicAdmission = SyntheaProcedure("305428000", "Admission to orthopedic department")
    static let upperArmXRay = SyntheaProcedure("1225002", "Upper arm X-ray")
    static let clavicleXRay = SyntheaProcedure("168594001", "Clavicle X-ray")
    static let ankleXRay = SyntheaProcedure("19490002", "Ankle X-ray")
    static let wristXRay = SyntheaProcedure("60027007", "X-ray or wrist")
    static let pelvisXRay = SyntheaProcedure("268425006", "Pelvis X-ray")
    static let boneDensityScan = SyntheaProcedure("312681000", "Bone density scan (procedure)", cost: 12956.65, spread: 0.33)
    static let appendectomy = SyntheaProcedure("80146002", "Appendectomy")
    static let wisdomTooth = SyntheaProcedure("65546002", "Extraction of wisdom tooth", cost: 16301.17, spread: 0.18)
    static let echocardiography = SyntheaProcedure("40701008", "Echocardiography (procedure)", cost: 1229.48, spread: 0.2)
    static let oxygenByMask = SyntheaProcedure("371908008", "Oxygen administration by mask (procedure)")
    static let pronePosition = SyntheaProcedure("431182000", "Placing subject in prone position (procedure)")
    static let ventilation = SyntheaProcedure("26763009", "Controlled ventilation procedure and therapy  initiation and management (procedure)")
    static let bloodSmear = SyntheaProcedure("14768001", "Peripheral blood smear interpretation")
    static let intramuscularInjection = SyntheaProcedure("76601001", "Intramuscular injection", cost: 3593.40, spread: 0.27)
    static let implantInsertion = SyntheaProcedure("169553002", "Insertion of subcutaneous contraceptive", cost: 11773.13, spread: 0.25)
    static let implantRemoval = SyntheaProcedure("301807007", "Removal of subcutaneous contraceptive", cost: 12758.19, spread: 0.2)
    static let iudInsertion = SyntheaProcedure("65200003", "Insertion of intrauterine contraceptive device")
    static let cognitiveTherapy = SyntheaProcedure("228557008", "Cognitive and behavioral therapy", cost: 12489.51, spread: 0.34)
    static let allergyScreening = SyntheaProcedure("395142003", "Allergy screening test")
    static let immunotherapy = SyntheaProcedure("180256009", "Subcutaneous immunotherapy", cost: 16395.54, spread: 0.28)
    static let movementTherapy = SyntheaProcedure("229064008", "Movement therapy (regime/therapy)")

    // Pregnancy.
    static let prenatalInitial: [SyntheaProcedure] = [
        SyntheaProcedure("252160004", "Standard pregnancy test", cost: 7268.94, spread: 0.29),
        SyntheaProcedure("169230002", "Ultrasound scan for fetal viability", cost: 13182.10, spread: 0.26),
        SyntheaProcedure("104091002", "Hemoglobin / Hematocrit / Platelet count", cost: 2689.85, spread: 0.25),
        SyntheaProcedure("44608003", "Blood typing  RH typing", cost: 2700.20, spread: 0.24),
        SyntheaProcedure("47758006", "Hepatitis B Surface Antigen Measurement", cost: 2943.95, spread: 0.22),
        SyntheaProcedure("31676001", "Human immunodeficiency virus antigen test", cost: 2803.56, spread: 0.23),
        SyntheaProcedure("310861008", "Chlamydia antigen test", cost: 2829.24, spread: 0.29),
        SyntheaProcedure("165829005", "Gonorrhea infection test", cost: 2838.34, spread: 0.26),
        SyntheaProcedure("269828009", "Syphilis infection test", cost: 3126.68, spread: 0.22),
        SyntheaProcedure("117010004", "Urine culture", cost: 3053.38, spread: 0.28),
        SyntheaProcedure("90226004", "Cytopathology procedure  preparation of smear  genital source", cost: 2998.52, spread: 0.25),
        SyntheaProcedure("395123002", "Urine screening test for diabetes", cost: 2773.54, spread: 0.32),
        SyntheaProcedure("104375008", "Hepatitis C antibody test", cost: 2795.88, spread: 0.2),
        SyntheaProcedure("169690007", "Rubella screening", cost: 2693.17, spread: 0.15),
        SyntheaProcedure("104326007", "Measurement of Varicella-zoster virus antibody", cost: 2750.58, spread: 0.22),
        SyntheaProcedure("28163009", "Skin test for tuberculosis", cost: 2672.55, spread: 0.3),
        SyntheaProcedure("167271000", "Urine protein test", cost: 2706.85, spread: 0.23),
        SyntheaProcedure("5880005", "Physical examination of mother"),
    ]
    static let fundalHeight = SyntheaProcedure("274804006", "Evaluation of uterine fundal height", cost: 7186.86, spread: 0.24)
    static let fetalHeart = SyntheaProcedure("225158009", "Auscultation of the fetal heart", cost: 7598.18, spread: 0.26)
    /// Checks done once at a mid-pregnancy visit.
    static let prenatalMidterm: [SyntheaProcedure] = [
        SyntheaProcedure("443529005", "Screening for chromosomal aneuploidy in prenatal amniotic fluid", cost: 2619.16, spread: 0.21),
        SyntheaProcedure("271442007", "Fetal anatomy study"),
        SyntheaProcedure("275833003", "Alpha-fetoprotein test", cost: 3010.99, spread: 0.24),
        SyntheaProcedure("268556000", "Urine screening for glucose", cost: 2857.39, spread: 0.33),
        SyntheaProcedure("104091002", "Hemoglobin / Hematocrit / Platelet count", cost: 2689.85, spread: 0.25),
    ]
    static let pertussisVaccination = SyntheaProcedure("399014008", "Vaccination for diphtheria  pertussis  and tetanus", cost: 3806.70, spread: 0.26)
    static let groupBStrep = SyntheaProcedure("118001005", "Streptococcus pneumoniae group B antigen test", cost: 2932.38, spread: 0.25)
    static let rhImmunization = SyntheaProcedure("51116004", "RhD passive immunization", cost: 3522.21, spread: 0.21)
    static let childbirth = SyntheaProcedure("66348005", "Childbirth")
    static let episiotomy = SyntheaProcedure("85548006", "Episiotomy", cost: 7497.91, spread: 0.2)
    static let depressionScreeningPregnancy = SyntheaProcedure("171207006", "Depression screening")
    static let motherExam = SyntheaProcedure("5880005", "Physical examination")

    // Skilled nursing, home health and hospice.
    static let historyAndPhysical = SyntheaProcedure("63332003", "History AND physical examination (procedure)")
    static let initialAssessment = SyntheaProcedure("315639002", "Initial patient assessment (procedure)")
    static let carePlan = SyntheaProcedure("370789001", "Development of individualized plan of care (procedure)")
    static let nursingCare = SyntheaProcedure("410401003", "Nursing care/supplementary surveillance (regime/therapy)")
    static let physicalTherapy = SyntheaProcedure("91251008", "Physical therapy procedure (regime/therapy)", cost: 685.71, spread: 0.27)
    static let occupationalTherapy = SyntheaProcedure("84478008", "Occupational therapy (regime/therapy)")
    static let professionalServices = SyntheaProcedure("409023009", "Professional / ancillary services care (regime/therapy)")
    static let speechTherapy = SyntheaProcedure("311555007", "Speech and language therapy regime (regime/therapy")
    static let preDischarge = SyntheaProcedure("225386006", "Pre-discharge assessment (procedure)")
    static let snfDischarge = SyntheaProcedure("449381000124108", "Discharge from skilled nursing facility (procedure)")
    static let patientDischarge = SyntheaProcedure("58000006", "Patient discharge (procedure)")
    static let hospiceCare = SyntheaProcedure("385763009", "Hospice care (regime/therapy)")
    static let certification = SyntheaProcedure("310417005", "Certification procedure (procedure)")
    static let notifications = SyntheaProcedure("185087000", "Notifications (procedure)")
}

// MARK: - Immunizations

enum SyntheaImmunizations {
    static let influenza = SyntheaConcept("140", "Influenza  seasonal  injectable  preservative free")
    static let hepBPediatric = SyntheaConcept("08", "Hep B  adolescent or pediatric")
    static let dtap = SyntheaConcept("20", "DTaP")
    static let ipv = SyntheaConcept("10", "IPV")
    static let hib = SyntheaConcept("49", "Hib (PRP-OMP)")
    static let pcv13 = SyntheaConcept("133", "Pneumococcal conjugate PCV 13")
    static let rotavirus = SyntheaConcept("119", "rotavirus  monovalent")
    static let varicella = SyntheaConcept("21", "varicella")
    static let mmr = SyntheaConcept("03", "MMR")
    static let hepAPediatric = SyntheaConcept("83", "Hep A  ped/adol  2 dose")
    static let tdap = SyntheaConcept("115", "Tdap")
    static let hpv = SyntheaConcept("62", "HPV  quadrivalent")
    static let meningococcal = SyntheaConcept("114", "meningococcal MCV4P")
    static let td = SyntheaConcept("113", "Td (adult) preservative free")
    static let hepBAdult = SyntheaConcept("43", "Hep B  adult")
    static let hepAAdult = SyntheaConcept("52", "Hep A  adult")
    static let zoster = SyntheaConcept("121", "zoster")
    static let pneumococcal23 = SyntheaConcept("33", "pneumococcal polysaccharide vaccine  23 valent")
    static let covidPfizer = SyntheaConcept("208", "SARS-COV-2 (COVID-19) vaccine  mRNA  spike protein  LNP  preservative free  30 mcg/0.3mL dose")
    static let covidModerna = SyntheaConcept("207", "SARS-COV-2 (COVID-19) vaccine  mRNA  spike protein  LNP  preservative free  100 mcg/0.5mL dose")
    static let covidJanssen = SyntheaConcept("212", "SARS-COV-2 (COVID-19) vaccine  vector non-replicating  recombinant spike protein-Ad26  preservative free  0.5 mL")

    /// The childhood schedule: age in days at the well-child visit, and the vaccines given.
    static let childhoodSchedule: [(days: Int, vaccines: [SyntheaConcept])] = [
        (0, [hepBPediatric]),
        (61, [dtap, ipv, hib, pcv13, rotavirus, hepBPediatric]),
        (122, [dtap, ipv, hib, pcv13, rotavirus]),
        (183, [dtap, ipv, pcv13, hepBPediatric]),
        (365, [hib, pcv13, varicella, mmr, hepAPediatric]),
        (456, [dtap]),
        (548, [hepAPediatric]),
        (1461, [dtap, ipv, varicella, mmr]),
        (4018, [tdap, hpv, meningococcal]),
        (4383, [hpv]),
        (5844, [meningococcal]),
    ]
}

// MARK: - Acute episodes

/// An acute illness or injury: what is recorded, where, and for how long.
struct SyntheaAcuteKind: Sendable {
    enum Setting: Sendable { case clinic, emergency, urgentCare }
    enum Group: Sendable { case anyone, child, adult, female, elderly }
    let condition: SyntheaConcept
    let weight: Int
    let group: Group
    let setting: Setting
    let minDays: Int
    let maxDays: Int
    /// Medications with the probability each is prescribed (reason = this condition).
    let medications: [(SyntheaMedication, Double)]
    /// Procedures with the probability each is done.
    let procedures: [(SyntheaProcedure, Double)]
    let feverish: Bool

    init(_ code: String, _ description: String, weight: Int, group: Group = .anyone, setting: Setting = .clinic,
         days: ClosedRange<Int>, medications: [(SyntheaMedication, Double)] = [], procedures: [(SyntheaProcedure, Double)] = [],
         feverish: Bool = false) {
        condition = SyntheaConcept(code, description)
        self.weight = weight
        self.group = group
        self.setting = setting
        minDays = days.lowerBound
        maxDays = days.upperBound
        self.medications = medications
        self.procedures = procedures
        self.feverish = feverish
    }
}

enum SyntheaAcute {
    typealias M = SyntheaMedications
    typealias P = SyntheaProcedures
    static let kinds: [SyntheaAcuteKind] = [
        SyntheaAcuteKind("444814009", "Viral sinusitis (disorder)", weight: 51, days: 7...21, medications: [(M.amoxicillinClavulanate, 0.18)]),
        SyntheaAcuteKind("195662009", "Acute viral pharyngitis (disorder)", weight: 48, days: 7...14,
                         medications: [(M.penicillin250, 0.04)], procedures: [(P.throatCulture, 0.32)], feverish: true),
        SyntheaAcuteKind("10509002", "Acute bronchitis (disorder)", weight: 28, days: 7...21,
                         medications: [(M.acetaminophen325, 0.8), (M.coldSyrup, 0.2)],
                         procedures: [(P.respiratoryFunction, 0.3), (P.sputumExamination, 0.2), (P.chestXRay, 0.04)], feverish: true),
        SyntheaAcuteKind("36971009", "Sinusitis (disorder)", weight: 6, days: 14...40, medications: [(M.amoxicillin500, 0.3)]),
        SyntheaAcuteKind("75498004", "Acute bacterial sinusitis (disorder)", weight: 5, days: 10...21, medications: [(M.amoxicillinClavulanate, 0.5), (M.cefuroxime, 0.1)]),
        SyntheaAcuteKind("43878008", "Streptococcal sore throat (disorder)", weight: 4, days: 7...12,
                         medications: [(M.penicillin250, 0.6), (M.penicillin500, 0.3)], procedures: [(P.throatCulture, 0.6)], feverish: true),
        SyntheaAcuteKind("65363002", "Otitis media", weight: 12, group: .child, days: 7...21,
                         medications: [(M.amoxicillin250, 0.3), (M.childPainRelief, 0.5)], feverish: true),
        SyntheaAcuteKind("301011002", "Escherichia coli urinary tract infection", weight: 6, group: .female, days: 7...14,
                         medications: [(M.nitrofurantoin, 0.9), (M.phenazopyridine, 0.9)], procedures: [(P.urineCulture, 0.3)]),
        SyntheaAcuteKind("38822007", "Cystitis", weight: 2, group: .female, days: 5...10,
                         medications: [(M.nitrofurantoin, 0.9), (M.phenazopyridine, 0.9)]),
        SyntheaAcuteKind("24079001", "Atopic dermatitis", weight: 2, group: .child, days: 30...200, medications: [(M.hydrocortisone, 0.5)]),
        SyntheaAcuteKind("44465007", "Sprain of ankle", weight: 5, setting: .emergency, days: 14...42,
                         medications: [(M.naproxen500, 0.1)], procedures: [(P.ankleXRay, 0.4)]),
        SyntheaAcuteKind("70704007", "Sprain of wrist", weight: 2, setting: .emergency, days: 14...35, procedures: [(P.wristXRay, 0.5)]),
        SyntheaAcuteKind("65966004", "Fracture of forearm", weight: 6, setting: .emergency, days: 42...70,
                         procedures: [(P.upperArmXRay, 1), (P.boneImmobilization, 1), (P.boneDensityScan, 0.3)]),
        SyntheaAcuteKind("58150001", "Fracture of clavicle", weight: 3, setting: .emergency, days: 42...70,
                         procedures: [(P.clavicleXRay, 1), (P.orthopedicAdmission, 1)]),
        SyntheaAcuteKind("16114001", "Fracture of ankle", weight: 2, setting: .emergency, days: 42...70,
                         procedures: [(P.ankleXRay, 1), (P.boneImmobilization, 1)]),
        SyntheaAcuteKind("263102004", "Fracture subluxation of wrist", weight: 1, setting: .emergency, days: 42...70,
                         procedures: [(P.wristXRay, 1), (P.boneDensityScan, 0.5)]),
        SyntheaAcuteKind("283385000", "Laceration of thigh", weight: 4, setting: .emergency, days: 14...28,
                         procedures: [(P.sutureWound, 1), (P.tetanusAntitoxin, 0.4)]),
        SyntheaAcuteKind("370247008", "Facial laceration", weight: 2, setting: .emergency, days: 14...28,
                         procedures: [(P.sutureWound, 1), (P.tetanusAntitoxin, 0.4)]),
        SyntheaAcuteKind("283371005", "Laceration of forearm", weight: 1, setting: .emergency, days: 14...28,
                         procedures: [(P.sutureWound, 1)]),
        SyntheaAcuteKind("39848009", "Whiplash injury to neck", weight: 5, setting: .emergency, days: 21...60),
        SyntheaAcuteKind("62106007", "Concussion with no loss of consciousness", weight: 1, setting: .emergency, days: 14...42),
        SyntheaAcuteKind("403190006", "First degree burn", weight: 1, setting: .urgentCare, days: 7...21),
        SyntheaAcuteKind("262574004", "Bullet wound", weight: 1, group: .adult, setting: .emergency, days: 30...90,
                         procedures: [(P.sutureWound, 1)]),
        SyntheaAcuteKind("68496003", "Polyp of colon", weight: 1, group: .elderly, days: 14...60, procedures: [(P.colonoscopy, 1)]),
    ]
}

// MARK: - Demographics

enum SyntheaDemographics {
    static let races = SyntheaWeighted<SyntheaRace>([(.white, 44), (.asian, 5), (.black, 5), (.hawaiian, 4), (.other, 1)])
    /// Share of patients recorded as hispanic (20 of 59 in the sample).
    static let hispanicShare = 0.34

    /// County, weight, a few of its towns with the ZIP prefix, and a centre point.
    static let counties = SyntheaWeighted<SyntheaCounty>([
        (SyntheaCounty("Los Angeles County", towns: ["Los Angeles", "Long Beach", "Pasadena", "Glendale", "Santa Clarita", "Torrance"], zip: 900, lat: 34.05, lon: -118.25), 13),
        (SyntheaCounty("Riverside County", towns: ["Riverside", "Moreno Valley", "Desert Hot Springs", "Temecula", "Corona"], zip: 925, lat: 33.95, lon: -117.40), 8),
        (SyntheaCounty("San Diego County", towns: ["San Diego", "Chula Vista", "Oceanside", "Escondido", "Carlsbad"], zip: 921, lat: 32.72, lon: -117.16), 8),
        (SyntheaCounty("Orange County", towns: ["Anaheim", "Irvine", "Santa Ana", "Tustin", "Orange", "Fullerton"], zip: 928, lat: 33.74, lon: -117.87), 6),
        (SyntheaCounty("Santa Clara County", towns: ["San Jose", "Mountain View", "Sunnyvale", "Palo Alto"], zip: 950, lat: 37.34, lon: -121.89), 4),
        (SyntheaCounty("San Francisco County", towns: ["San Francisco"], zip: 941, lat: 37.77, lon: -122.42), 4),
        (SyntheaCounty("Contra Costa County", towns: ["Concord", "Martinez", "Richmond", "Antioch"], zip: 945, lat: 37.93, lon: -122.05), 3),
        (SyntheaCounty("Butte County", towns: ["Chico", "Oroville", "Paradise"], zip: 959, lat: 39.73, lon: -121.84), 3),
        (SyntheaCounty("San Bernardino County", towns: ["San Bernardino", "Fontana", "Ontario", "Rialto"], zip: 923, lat: 34.11, lon: -117.29), 3),
        (SyntheaCounty("Tulare County", towns: ["Visalia", "Tulare", "Porterville"], zip: 932, lat: 36.33, lon: -119.29), 1),
        (SyntheaCounty("Solano County", towns: ["Fairfield", "Vallejo", "Vacaville"], zip: 945, lat: 38.25, lon: -122.04), 1),
        (SyntheaCounty("Santa Barbara County", towns: ["Santa Barbara", "Santa Maria", "Goleta"], zip: 931, lat: 34.42, lon: -119.70), 1),
        (SyntheaCounty("Monterey County", towns: ["Salinas", "Monterey", "Greenfield"], zip: 939, lat: 36.68, lon: -121.66), 1),
        (SyntheaCounty("San Benito County", towns: ["Hollister"], zip: 950, lat: 36.85, lon: -121.40), 1),
        (SyntheaCounty("Marin County", towns: ["San Rafael", "Novato", "Bolinas"], zip: 949, lat: 38.00, lon: -122.53), 1),
        (SyntheaCounty("Fresno County", towns: ["Fresno", "Clovis", "Sanger"], zip: 937, lat: 36.74, lon: -119.79), 1),
    ])
    /// Birthplaces outside California, as Synthea writes them (town, region, country code).
    static let foreignBirthplaces: [[UInt8]] = [
        "Lima  Lima Province  PE", "Mexico City  Mexico City  MX", "Guadalajara  Jalisco  MX", "Seoul  Seoul  KR",
        "Manila  National Capital Region  PH", "San Juan  Puerto Rico  PR", "Guatemala City  Guatemala  GT",
        "Buenos Aires  Ciudad de Buenos Aires  AR", "Ho Chi Minh City  Ho Chi Minh  VN",
    ].map { CSVText.field($0) }
    static let californiaTowns: [String] = [
        "Sacramento", "Oakland", "Fresno", "Bakersfield", "Stockton", "Modesto", "Oxnard", "Salinas", "Santa Rosa",
        "Berkeley", "Redding", "Merced", "San Mateo", "Livermore", "Ventura", "Napa", "Eureka", "Davis",
    ]

    // Syllables for obviously fake names and street names (never real patients' names).
    static let nameStarts = ["Ka", "Lo", "Mi", "Da", "Ro", "Te", "Ja", "Be", "Sa", "No", "Vi", "Ha", "Ze", "Pa", "Li", "Co", "Fe", "Ma"]
    static let nameMiddles = ["ra", "le", "ni", "lo", "ve", "ta", "ri", "mo", "si", "da", "no", "ke"]
    static let nameEnds = ["n", "l", "th", "ra", "son", "na", "ric", "ly", "mon", "ssa", "ro", "ck", "lle", "ton"]
    static let streetTypes = ["Street", "Avenue", "Road", "Lane", "Way", "Court", "Place", "Drive", "Terrace", "Crossing"]
    static let unitKinds = ["Apt", "Unit", "Suite"]
    static let suffixes = ["PhD", "JD", "MD"]
}

enum SyntheaRace: Sendable {
    case white, asian, black, hawaiian, other

    var csv: [UInt8] {
        switch self {
        case .white: return Array("white".utf8)
        case .asian: return Array("asian".utf8)
        case .black: return Array("black".utf8)
        case .hawaiian: return Array("hawaiian".utf8)
        case .other: return Array("other".utf8)
        }
    }

    /// The PRAPARE answer to "Which race(s) are you?".
    var surveyAnswer: [UInt8] {
        switch self {
        case .white: return Array("White".utf8)
        case .asian: return Array("Asian".utf8)
        case .black: return Array("Black/African American".utf8)
        case .hawaiian: return Array("Pacific Islander".utf8)
        case .other: return Array("Other  Please write".utf8)
        }
    }
}

struct SyntheaCounty: Sendable {
    let name: [UInt8]
    let towns: [[UInt8]]
    let zipPrefix: Int
    let latitude: Double
    let longitude: Double

    init(_ name: String, towns: [String], zip: Int, lat: Double, lon: Double) {
        self.name = CSVText.field(name)
        self.towns = towns.map { CSVText.field($0) }
        zipPrefix = zip
        latitude = lat
        longitude = lon
    }
}
